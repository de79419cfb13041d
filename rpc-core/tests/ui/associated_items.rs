#[rpc_core::service]
trait Greeter {
    type Name;
    const LIMIT: usize;
    async fn hello(&self, name: String) -> String;
}

fn main() {}
