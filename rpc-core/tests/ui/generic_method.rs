#[rpc_core::service]
trait Store {
    async fn put<T: serde::Serialize>(&self, value: T);
    async fn get(&self, key: String) -> String
    where
        String: Clone;
}

fn main() {}
