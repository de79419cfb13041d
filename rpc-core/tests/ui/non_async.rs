#[rpc_core::service]
trait Greeter {
    fn hello(&self, name: String) -> String;
}

fn main() {}
