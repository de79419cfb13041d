//! rpc-core: a trait-first RPC framework with a service registry.
//!
//! - [`protocol`]: the length-prefixed wire protocol and its body codecs;
//! - [`server`]: serves any number of services on one port;
//! - [`registry`]: the [`Registry`] trait that backends implement;
//! - [`call`]: one call as the layers below the stub see it: options, [`Deadline`];
//! - the transport (internal): multiplexed connections, one per provider address;
//! - [`cluster`]: the consumer side of discovery: directory, balancing, fault tolerance;
//! - [`client`]: the handle users call through, above all of them.
//!
//! Layers only import downwards: protocol, registry and call at the bottom, then the
//! transport, the cluster, the client and the server, and [`config`] on top
//! (`tests/layers.rs` checks that no import cycle creeps in).
//!
//! Define a service with [`service`] on a trait, implement it, serve it with
//! [`Server::builder`], and call it through the generated `<Trait>Client`:
//!
//! ```
//! #[rpc_core::service(name = "example.Greeter", version = "1.0.0")]
//! pub trait Greeter {
//!     async fn hello(&self, name: String) -> String;
//! }
//!
//! struct MyGreeter;
//!
//! impl Greeter for MyGreeter {
//!     async fn hello(&self, name: String) -> String {
//!         format!("Hello, {name}!")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = rpc_core::Server::builder()
//!     .bind("127.0.0.1:0")
//!     .serve(GreeterServer::new(MyGreeter))
//!     .start()
//!     .await?;
//!
//! let greeter = GreeterClient::connect(&server.local_addr().to_string()).await?;
//! assert_eq!(greeter.hello("bob".into()).await?, "Hello, bob!");
//!
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! With a registry, the server publishes itself (`.registry(registry)`) and the client finds
//! providers (`GreeterClient::discover(registry)`); see the `rpc-registry` crate.

#![deny(missing_docs)]

pub mod admin;
pub mod backoff;
pub mod call;
pub mod client;
pub mod cluster;
pub mod config;
mod defaults;
pub mod documents;
mod error;
mod metric_handles;
pub mod protocol;
pub mod registry;
pub mod server;
mod service;
mod transport;

pub use call::{context, Deadline};
pub use client::{CallOptions, Client, ClientBuilder};
pub use config::{ConfigError, RpcConfig};
pub use error::RpcError;
pub use protocol::{BodyCodec, Codec, Codecs, Status};
pub use registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent, WatchStream};
pub use rpc_macros::service;

/// The `tower` version whose `Layer` and `Service` traits [`ClientBuilder::layer`] and
/// [`ServerBuilder::layer`] take, so middleware needs no separate pin to the same version.
pub use tower;

/// The serde version this crate's public API uses, so `#[derive(rpc_core::serde::Serialize)]`
/// argument types need no separate `serde` dependency pinned to the same version.
pub use serde;

/// The attribute that a [`Registry`] implementation outside this crate puts on its `impl`
/// block (`#[rpc_core::async_trait]`), so it needs no `async-trait` dependency of its own.
pub use async_trait::async_trait;

/// The erased-serde version [`BodyCodec`] uses, so a codec of your own needs no separate
/// `erased-serde` dependency pinned to the same version.
pub use erased_serde;
pub use server::{Server, ServerBuilder, ServerHandle, ServerStats};
pub use service::{DispatchError, MethodDescriptor, ResponseFuture, Service, ServiceDescriptor};

/// README's Rust examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Items the `#[service]` macro's expansion refers to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::service::WireType;
    pub use bytes::Bytes;
    pub use serde_bytes;
    pub use std::sync::Arc;
}
