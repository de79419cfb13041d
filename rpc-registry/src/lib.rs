//! Registry backends for rpc-core, chosen by URL:
//!
//! - `memory://` — in-process, for embedding and single-process apps;
//! - `etcd://host:port[,host:port...][/root]` — etcd v3, one lease per client;
//! - `zookeeper://host:port[,host:port...][/root]` (alias `zk://`) — ephemeral nodes.
//!
//! Options are URL query parameters (`?ttl=2&heartbeat=1`) or [`RegistryOptions`] fields.
//!
//! A provider publishes itself and a consumer finds it (here in-process, with `memory://`;
//! the same code works with an `etcd://` or `zookeeper://` URL):
//!
//! ```
//! # mod svc {
//! #[rpc_core::service(name = "example.Greeter")]
//! pub trait Greeter {
//!     async fn hello(&self, name: String) -> String;
//! }
//! # }
//! # use svc::{Greeter, GreeterClient, GreeterServer};
//! struct MyGreeter;
//! impl Greeter for MyGreeter {
//!     async fn hello(&self, name: String) -> String {
//!         format!("Hello, {name}!")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = rpc_registry::connect("memory://doc").await?;
//!
//! let server = rpc_core::Server::builder()
//!     .serve(GreeterServer::new(MyGreeter))
//!     .registry(registry.clone())
//!     .propagation_grace(std::time::Duration::ZERO)
//!     .start()
//!     .await?;
//!
//! let greeter = GreeterClient::discover(registry.clone());
//! assert_eq!(greeter.hello("ann".into()).await?, "Hello, ann!");
//!
//! server.shutdown().await?; // deregisters first
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod etcd;
mod layout;
mod memory;
mod options;
mod zookeeper;

use std::sync::Arc;

pub use etcd::EtcdRegistry;
pub use memory::MemoryRegistry;
pub use options::{RegistryOptions, RegistryUrl, Scheme};
pub use rpc_core::registry::{Registry, RegistryError};
pub use zookeeper::ZookeeperRegistry;

/// Connects to the registry a URL names, with the options in its query.
pub async fn connect(url: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    let parsed = RegistryUrl::parse(url)?;
    connect_with(parsed).await
}

/// Connects to a registry from an already parsed URL (options may have been adjusted).
pub async fn connect_with(url: RegistryUrl) -> Result<Arc<dyn Registry>, RegistryError> {
    Ok(match url.scheme {
        Scheme::Memory => Arc::new(MemoryRegistry::named(&url.endpoints.join(","))),
        Scheme::Etcd => Arc::new(EtcdRegistry::connect(url).await?),
        Scheme::Zookeeper => Arc::new(ZookeeperRegistry::connect(url).await?),
    })
}
