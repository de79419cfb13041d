#[rpc_core::service]
trait Greeter {
    #[idempotent(true)]
    async fn hello(&self, name: String) -> String;
}

fn main() {}
