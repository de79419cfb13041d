#[rpc_core::service]
trait Store<T> {
    async fn get(&self, key: String) -> T;
}

#[rpc_core::service]
trait Cache
where
    Self: Sized,
{
    async fn get(&self, key: String) -> String;
}

#[rpc_core::service]
unsafe trait Vault {
    async fn open(&self);
}

fn main() {}
