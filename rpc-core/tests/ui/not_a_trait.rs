#[rpc_core::service]
struct Greeter {
    name: String,
}

fn main() {}
