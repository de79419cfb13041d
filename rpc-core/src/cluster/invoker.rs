//! The [`Invoker`]: what runs a call over the providers a registry lists. It owns the
//! directory, the ejector, the fail-back queue and the pool, and runs the attempt loop under
//! the configured policy.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;

use super::attempts;
use super::config::ClusterConfig;
use super::directory::Directory;
use super::eject::Ejector;
use super::fault::failback::{FailbackQueue, Redeliver};
use super::fault::{failsafe, FaultPolicy};
use super::not_serving::NotServing;
use crate::call::{Call, CallOptions};
use crate::registry::Registry;
use crate::transport::Pool;
use crate::RpcError;

/// Routes calls over the providers a registry lists. Clones share everything.
#[derive(Clone)]
pub(crate) struct Invoker {
    state: Arc<InvokerState>,
}

/// What the call path and the background tasks (fail-back, probes) share.
pub(crate) struct InvokerState {
    pub(crate) directory: Directory,
    pub(crate) config: ClusterConfig,
    pub(crate) ejector: Ejector,
    pub(crate) pool: Arc<Pool>,
    /// Addresses that said they do not serve a service key.
    pub(crate) not_serving: NotServing,
    failback: FailbackQueue,
}

impl Invoker {
    /// An invoker over `registry`, sending through `pool`.
    pub(crate) fn new(
        registry: Arc<dyn Registry>,
        config: ClusterConfig,
        pool: Arc<Pool>,
    ) -> Invoker {
        let forget = Arc::downgrade(&pool);
        let on_removed = Arc::new(move |addr: SocketAddr| {
            if let Some(pool) = forget.upgrade() {
                pool.remove(addr);
            }
        });
        Invoker {
            state: Arc::new(InvokerState {
                directory: Directory::build(registry, config.directory.clone(), Some(on_removed)),
                ejector: Ejector::new(config.ejection.clone(), Arc::clone(&pool)),
                failback: FailbackQueue::new(config.failback.clone()),
                not_serving: NotServing::default(),
                config,
                pool,
            }),
        }
    }

    /// The registry backend's name.
    pub(crate) fn backend(&self) -> &'static str {
        self.state.directory.backend()
    }

    /// The directory of provider lists.
    pub(crate) fn directory(&self) -> &Directory {
        &self.state.directory
    }

    /// Runs `call` under the configured balancer and policy.
    pub(crate) async fn invoke(&self, call: &Call) -> Result<Bytes, RpcError> {
        self.state.run(call, None).await
    }

    /// The fault policy for `call`'s service: a governance override's, else the configured.
    fn policy(&self, call: &Call) -> FaultPolicy {
        self.state
            .directory
            .cached_name(&call.service_key)
            .and_then(|entry| entry.governance().policy())
            .unwrap_or(self.state.config.policy)
    }

    /// The whole-call budget a governance override sets for the service spelled `key`, once
    /// the service has been looked up (it wins over the code's and the configuration's).
    pub(crate) fn deadline_override(&self, key: &str) -> Option<std::time::Duration> {
        self.state
            .directory
            .cached_name(key)?
            .governance()
            .deadline()
    }

    /// Turns the call's final error into its result under the policy: fail-safe may answer
    /// with the caller's fallback; fail-back queues the call and returns the error.
    pub(crate) fn on_final_error<R: DeserializeOwned>(
        &self,
        call: &Call,
        error: RpcError,
        options: &CallOptions,
    ) -> Result<R, RpcError> {
        match self.policy(call) {
            FaultPolicy::Failfast | FaultPolicy::Failover => Err(error),
            FaultPolicy::Failsafe => failsafe::fallback(call, error, options),
            FaultPolicy::Failback => {
                let state: Arc<dyn Redeliver> = self.state.clone();
                self.state
                    .failback
                    .push(Arc::downgrade(&state), call, &error);
                Err(error)
            }
        }
    }
}

impl InvokerState {
    /// Looks the service up and runs `call`, with `attempts` attempts or (`None`) as many as
    /// the policy in force allows (governance overrides win over the configuration).
    async fn run(&self, call: &Call, attempts: Option<usize>) -> Result<Bytes, RpcError> {
        let entry = self
            .directory
            .lookup(&call.service_key, || call.key())
            .await?;
        let attempts = attempts.unwrap_or_else(|| {
            entry
                .governance()
                .attempts(self.config.policy, self.config.max_attempts)
        });
        attempts::run(self, call, &entry, attempts).await
    }
}

impl Redeliver for InvokerState {
    /// Fail-back's background retries run with fail-over, whatever the policy.
    fn redeliver<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Bytes, RpcError>> {
        self.run(call, Some(self.config.max_attempts)).boxed()
    }
}
