//! The consumer side of discovery: which providers exist ([`Directory`]), which one takes a
//! call ([`LoadBalancer`]), and what happens when it fails ([`FaultPolicy`], outlier
//! ejection).
//!
//! A call through a registry client flows: the [`Directory`] gives the service's current
//! [`Members`] (no lock, no await) -> the balancer picks an [`Endpoint`], skipping ejected
//! ones and ones this call already tried -> one attempt on the pooled connection -> its
//! [`Outcome`] updates the endpoint's statistics, ejection and the balancer -> on a
//! retryable failure, fail-over backs off and tries another endpoint.
//!
//! Everything is configured through [`ClusterConfig`].

mod attempt;
pub mod balance;
mod config;
mod directory;
mod eject;
mod endpoint;
pub mod fault;
mod hash;
mod outcome;
mod snapshot_file;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

pub use balance::{
    BalancerKind, ConsistentHash, LeastLoaded, LoadBalancer, Pick, Random, RoundRobin,
    UnknownBalancer, WeightedRandom, WeightedRoundRobin,
};
pub use config::ClusterConfig;
pub use directory::{Directory, DirectoryConfig, ServiceEntry};
pub use eject::EjectionConfig;
pub use endpoint::{Endpoint, Members};
pub use fault::failback::FailbackConfig;
pub use fault::{FaultPolicy, UnknownPolicy};
pub use hash::StableHasher;
pub use outcome::Outcome;

use crate::client::{Call, CallOptions, Pool};
use crate::registry::Registry;
use crate::RpcError;
use eject::Ejector;
use fault::failback::FailbackQueue;

/// Routes calls over the providers a registry lists.
pub(crate) struct Cluster {
    inner: Arc<ClusterInner>,
}

/// What the call path and the background tasks share.
pub(crate) struct ClusterInner {
    directory: Directory,
    config: ClusterConfig,
    ejector: Ejector,
    pool: Arc<Pool>,
    failback: FailbackQueue,
}

impl Cluster {
    /// A cluster over `registry`, sending through `pool`.
    pub(crate) fn new(
        registry: Arc<dyn Registry>,
        config: ClusterConfig,
        pool: Arc<Pool>,
    ) -> Cluster {
        let forget = Arc::downgrade(&pool);
        let on_removed = Arc::new(move |addr: SocketAddr| {
            if let Some(pool) = forget.upgrade() {
                pool.remove(addr);
            }
        });
        Cluster {
            inner: Arc::new(ClusterInner {
                directory: Directory::build(registry, config.directory.clone(), Some(on_removed)),
                ejector: Ejector::new(config.ejection.clone(), Arc::clone(&pool)),
                failback: FailbackQueue::new(config.failback.clone()),
                config,
                pool,
            }),
        }
    }

    /// The registry backend's name.
    pub(crate) fn backend(&self) -> &'static str {
        self.inner.directory.backend()
    }

    /// The directory of provider lists.
    pub(crate) fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// Runs `call` under the configured balancer and policy.
    pub(crate) async fn invoke(&self, call: &Call) -> Result<Bytes, RpcError> {
        let entry = self
            .inner
            .directory
            .lookup(&call.service_key, || call.key())
            .await?;
        fault::failover::run(&self.inner, call, &entry, self.inner.config.attempts()).await
    }

    /// Turns the call's final error into its result under the policy: fail-safe may answer
    /// with the caller's fallback; fail-back queues the call and returns the error.
    pub(crate) fn on_final_error<R: DeserializeOwned>(
        &self,
        call: &Call,
        error: RpcError,
        options: &CallOptions,
    ) -> Result<R, RpcError> {
        match self.inner.config.policy {
            FaultPolicy::Failfast | FaultPolicy::Failover => Err(error),
            FaultPolicy::Failsafe => fault::failsafe::fallback(call, error, options),
            FaultPolicy::Failback => {
                self.inner
                    .failback
                    .push(Arc::downgrade(&self.inner), call, &error);
                Err(error)
            }
        }
    }
}

impl ClusterInner {
    /// Runs `call` with fail-over, whatever the policy (fail-back's background retries).
    pub(crate) async fn send(&self, call: &Call) -> Result<Bytes, RpcError> {
        let entry = self
            .directory
            .lookup(&call.service_key, || call.key())
            .await?;
        fault::failover::run(self, call, &entry, self.config.max_attempts).await
    }
}
