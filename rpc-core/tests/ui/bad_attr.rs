#[rpc_core::service(name = "example.Greeter", color = "blue")]
trait Greeter {
    async fn hello(&self, name: String) -> String;
}

#[rpc_core::service(version = 1)]
trait Other {
    async fn hello(&self, name: String) -> String;
}

fn main() {}
