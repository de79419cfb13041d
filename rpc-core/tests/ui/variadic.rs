#[rpc_core::service]
trait Logger {
    async fn log(&self, format: String, _: ...);
}

fn main() {}
