#[rpc_core::service]
trait Store<T> {
    async fn get(&self, key: String) -> T;
}

fn main() {}
