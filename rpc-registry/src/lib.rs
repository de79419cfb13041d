//! Registry backends for rpc-core, chosen by URL:
//!
//! - `memory://` — in-process, for embedding and single-process apps;
//! - `etcd://[user:password@]host:port[,host:port...][/root][?tls_ca=…&tls_cert=…&tls_key=…]`
//!   — etcd v3, one lease per client; optional user and TLS (docs/registry-security.md);
//! - `zookeeper://[user:password@]host:port[,host:port...][/root][?acl=open]` (alias `zk://`)
//!   — ephemeral nodes; optional digest auth, nodes "creator all, world read" by default;
//! - `redis://[user:password@]host:port[/db]` — one key per instance with a TTL, watched by
//!   keyspace notifications (docs/redis-registry.md);
//! - `nacos://host:port[?namespace=…&group=…]` — ephemeral Nacos instances through the
//!   official `nacos-sdk` (feature `nacos`, off by default; docs/nacos-registry.md).
//!
//! `memory://` is always built; `etcd://` and `zookeeper://` need the Cargo features `etcd`
//! and `zookeeper` (both on by default). With a backend left out, [`connect`] of its URL fails
//! with [`RegistryError::FeatureDisabled`], which names the feature to turn on.
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

mod backend_options;
mod credentials;
mod documents;
#[cfg(feature = "etcd")]
mod etcd;
mod layout;
mod memory;
pub mod metrics;
#[cfg(feature = "nacos")]
mod nacos;
mod options;
#[cfg(feature = "redis")]
mod redis;
mod security;
mod url_setters;
#[cfg(feature = "zookeeper")]
mod zookeeper;

use std::sync::Arc;

use rpc_core::RpcConfig;

pub use credentials::Credentials;
#[cfg(feature = "etcd")]
pub use etcd::EtcdRegistry;
pub use memory::MemoryRegistry;
#[cfg(feature = "nacos")]
pub use nacos::NacosRegistry;
pub use options::{RegistryOptions, RegistryUrl, Scheme};
#[cfg(feature = "redis")]
pub use redis::RedisRegistry;
pub use rpc_core::registry::{Registry, RegistryError};
pub use security::{NodeAcl, RegistryTls};
#[cfg(feature = "zookeeper")]
pub use zookeeper::ZookeeperRegistry;

/// Connects to the registry a URL names, with the options in its query.
pub async fn connect(url: &str) -> Result<Arc<dyn Registry>, RegistryError> {
    let parsed = RegistryUrl::parse(url)?;
    connect_with(parsed).await
}

/// Connects to the registry a configuration names (`registry.url` and the `registry.*` keys:
/// TTL, heartbeat, credentials, TLS, ACL); `Ok(None)` when it names none.
pub async fn connect_config(
    config: &RpcConfig,
) -> Result<Option<Arc<dyn Registry>>, RegistryError> {
    match RegistryUrl::from_config(config)? {
        Some(url) => Ok(Some(connect_with(url).await?)),
        None => Ok(None),
    }
}

/// Connects to a registry from an already parsed URL (options may have been adjusted).
///
/// A scheme whose backend this build left out fails with [`RegistryError::FeatureDisabled`].
pub async fn connect_with(url: RegistryUrl) -> Result<Arc<dyn Registry>, RegistryError> {
    Ok(match url.scheme {
        Scheme::Memory => Arc::new(MemoryRegistry::named(&url.endpoints.join(","))),
        #[cfg(feature = "etcd")]
        Scheme::Etcd => Arc::new(EtcdRegistry::connect(url).await?),
        #[cfg(feature = "zookeeper")]
        Scheme::Zookeeper => Arc::new(ZookeeperRegistry::connect(url).await?),
        #[cfg(not(feature = "etcd"))]
        Scheme::Etcd => return Err(feature_disabled("etcd", &url)),
        #[cfg(not(feature = "zookeeper"))]
        Scheme::Zookeeper => return Err(feature_disabled("zookeeper", &url)),
        #[cfg(feature = "redis")]
        Scheme::Redis => Arc::new(RedisRegistry::connect(url).await?),
        #[cfg(not(feature = "redis"))]
        Scheme::Redis => return Err(feature_disabled("redis", &url)),
        #[cfg(feature = "nacos")]
        Scheme::Nacos => Arc::new(NacosRegistry::connect(url).await?),
        #[cfg(not(feature = "nacos"))]
        Scheme::Nacos => return Err(feature_disabled("nacos", &url)),
    })
}

/// The error for a URL whose backend this build left out.
#[cfg(not(all(
    feature = "etcd",
    feature = "zookeeper",
    feature = "redis",
    feature = "nacos"
)))]
fn feature_disabled(feature: &'static str, url: &RegistryUrl) -> RegistryError {
    // The scheme as written (`zk` or `zookeeper`), for the message.
    let scheme = url
        .original
        .split_once("://")
        .map_or(feature, |(scheme, _)| scheme);
    RegistryError::FeatureDisabled {
        scheme: scheme.to_string(),
        feature,
        package: env!("CARGO_PKG_NAME"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "etcd"))]
    #[tokio::test]
    async fn etcd_without_its_feature_names_the_feature() {
        let err = connect("etcd://127.0.0.1:2379")
            .await
            .err()
            .expect("no etcd backend");
        assert!(
            matches!(
                err,
                RegistryError::FeatureDisabled {
                    feature: "etcd",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "etcd:// needs the `etcd` feature of rpc-registry (features = [\"etcd\"])"
        );
    }

    #[cfg(not(feature = "zookeeper"))]
    #[tokio::test]
    async fn zookeeper_without_its_feature_names_the_feature() {
        for url in ["zookeeper://127.0.0.1:2181", "zk://127.0.0.1:2181"] {
            let err = connect(url).await.err().expect("no zookeeper backend");
            let scheme = url.split_once("://").unwrap().0;
            assert_eq!(
                err.to_string(),
                format!("{scheme}:// needs the `zookeeper` feature of rpc-registry (features = [\"zookeeper\"])")
            );
        }
    }

    #[cfg(not(feature = "redis"))]
    #[tokio::test]
    async fn redis_without_its_feature_names_the_feature() {
        let err = connect("redis://:secret@127.0.0.1:6379")
            .await
            .err()
            .expect("no redis backend");
        assert_eq!(
            err.to_string(),
            "redis:// needs the `redis` feature of rpc-registry (features = [\"redis\"])"
        );
    }

    #[cfg(not(feature = "nacos"))]
    #[tokio::test]
    async fn nacos_without_its_feature_names_the_feature() {
        let err = connect("nacos://127.0.0.1:8848")
            .await
            .err()
            .expect("no nacos backend");
        assert_eq!(
            err.to_string(),
            "nacos:// needs the `nacos` feature of rpc-registry (features = [\"nacos\"])"
        );
    }

    #[tokio::test]
    async fn memory_is_always_there() {
        let registry = connect("memory://always").await.unwrap();
        assert_eq!(registry.backend(), "memory");
    }
}
