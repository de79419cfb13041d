#[rpc_core::service]
trait Greeter {
    async fn hello(name: String) -> String;
    async fn bye() -> String;
}

fn main() {}
