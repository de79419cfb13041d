//! An app on the `memory://` registry alone: rpc-registry without its `etcd` and `zookeeper`
//! features, so none of their clients (etcd-client, tonic, prost, zookeeper-client) is built.
//!
//! It serves a greeter, publishes it in an in-process registry, finds it there and calls it.

use std::time::Duration;

#[rpc_core::service(name = "memory.Greeter", version = "1.0.0")]
pub trait Greeter {
    async fn hello(&self, name: String) -> String;
}

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn hello(&self, name: String) -> String {
        format!("Hello, {name}!")
    }
}

/// Serves, discovers and calls the greeter once through `memory://<registry_name>`.
async fn greet(registry_name: &str, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    let registry = rpc_registry::connect(&format!("memory://{registry_name}")).await?;
    let server = rpc_core::Server::builder()
        .bind("127.0.0.1:0")
        .serve(GreeterServer::new(MyGreeter))
        .registry(registry.clone())
        .propagation_grace(Duration::ZERO)
        .start()
        .await?;
    let greeter = GreeterClient::discover(registry);
    let reply = greeter.hello(name.to_string()).await?;
    server.shutdown().await?;
    Ok(reply)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "world".to_string());
    println!("{}", greet("app", &name).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_through_the_memory_registry() {
        assert_eq!(greet("test", "ann").await.unwrap(), "Hello, ann!");
    }

    #[tokio::test]
    async fn network_registries_name_the_feature_they_need() {
        for (url, feature) in [
            ("etcd://127.0.0.1:2379", "etcd"),
            ("zookeeper://127.0.0.1:2181", "zookeeper"),
            ("zk://127.0.0.1:2181", "zookeeper"),
        ] {
            let error = rpc_registry::connect(url).await.err().expect("not built");
            let message = error.to_string();
            assert!(
                message.contains(&format!("`{feature}` feature of rpc-registry")),
                "{url}: {message}"
            );
        }
    }
}
