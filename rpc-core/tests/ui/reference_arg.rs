#[rpc_core::service]
trait Greeter {
    async fn hello(&self, name: &str) -> String;
    async fn all(&self, names: Vec<&'static str>, more: Option<std::borrow::Cow<'_, str>>);
    async fn show(&self, value: impl std::fmt::Display) -> impl serde::Serialize;
}

fn main() {}
