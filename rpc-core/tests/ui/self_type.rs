#[rpc_core::service]
trait Greeter {
    async fn copy(&self, other: Box<Self>) -> Self;
}

fn main() {}
