#[rpc_core::service]
trait Greeter {
    async fn hello(&self, name: String) -> String;
    async fn hello(&self) -> String;
}

fn main() {}
