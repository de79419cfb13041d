#[rpc_core::service]
trait Greeter {
    async unsafe fn a(&self);
    const fn b(&self);
    async extern "C" fn c(&self);
}

fn main() {}
