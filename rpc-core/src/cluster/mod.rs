//! The consumer side of discovery: which providers exist ([`Directory`]), which one takes a
//! call ([`LoadBalancer`]), and what happens when it fails ([`FaultPolicy`], outlier
//! ejection).
//!
//! A call through a registry client flows: the [`Directory`] gives the service's current
//! [`Members`] (no lock, no await) -> the balancer picks an [`Endpoint`], skipping ejected
//! ones and ones this call already tried -> one attempt on the pooled connection -> its
//! [`Outcome`] updates the endpoint's statistics, ejection and the balancer -> on a
//! retryable failure, the attempt loop backs off and tries another endpoint.
//!
//! The cluster sits above the transport and the call; the client handle sits above it.
//! Everything is configured through [`ClusterConfig`].

mod attempt;
mod attempts;
pub mod balance;
mod config;
mod directory;
mod eject;
mod endpoint;
pub mod fault;
pub mod governance;
mod invoker;
pub mod metrics;
mod not_serving;
mod outcome;

pub use balance::{
    BalancerKind, ConsistentHash, LeastLoaded, LoadBalancer, Pick, Random, RoundRobin,
    UnknownBalancer, WeightedRandom, WeightedRoundRobin,
};
pub use config::ClusterConfig;
pub use directory::{
    resolve_instance, Directory, DirectoryConfig, HostResolver, ServiceEntry, Unresolved,
};
pub use eject::EjectionConfig;
pub use endpoint::{Endpoint, Members};
pub use fault::failback::FailbackConfig;
pub use fault::{FaultPolicy, UnknownPolicy};
pub(crate) use invoker::Invoker;
pub use outcome::Outcome;

/// The stable hash that consistent hashing uses; it lives with the call, which hashes keys.
pub use crate::call::StableHasher;
