//! rpc-core: a trait-first RPC framework with a service registry.
//!
//! - [`protocol`]: the length-prefixed wire protocol and its body codecs;
//! - [`server`]: serves any number of services on one port;
//! - [`client`]: multiplexed connections, one per provider address;
//! - [`registry`]: the [`Registry`] trait that backends implement;
//! - [`cluster`]: the consumer side of discovery: directory, balancing, fault tolerance.
//!
//! Define a service with [`service`] on a trait, implement it, serve it with
//! [`Server::builder`], and call it through the generated `<Trait>Client`.

pub mod client;
pub mod cluster;
pub mod config;
mod error;
pub mod protocol;
pub mod registry;
pub mod server;
mod service;
mod transport;

pub use client::{CallOptions, Client, ClientBuilder};
pub use config::{ConfigError, RpcConfig};
pub use error::RpcError;
pub use protocol::{Codec, Status};
pub use registry::{Registry, RegistryError, ServiceInstance, ServiceKey};
pub use rpc_macros::service;
pub use server::{Server, ServerBuilder, ServerHandle};
pub use service::{DispatchError, MethodDescriptor, ResponseFuture, Service, ServiceDescriptor};

/// Items the `#[service]` macro's expansion refers to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use std::sync::Arc;
}
