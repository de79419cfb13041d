#[rpc_core::service]
trait Greeter {
    async fn connect(&self, addr: String);
    async fn with_options(&self);
}

fn main() {}
