#[rpc_core::service(name = "")]
trait Empty {
    async fn hello(&self);
}

#[rpc_core::service(name = "example:Greeter")]
trait Colon {
    async fn hello(&self);
}

#[rpc_core::service(name = "example/Greeter", version = "1.0/0")]
trait Slash {
    async fn hello(&self);
}

fn main() {}
