//! A registry and a load balancer written outside the framework, the way a user with their own
//! service registry would: on rpc-core's public API and tokio.
//!
//! - [`TinyRegistry`]: an in-process [`Registry`] whose watches deliver full snapshots;
//! - [`TakeTurns`]: a [`LoadBalancer`] that gives each allowed endpoint a turn and counts what
//!   it picked and how the attempts went.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rpc_core::cluster::{Endpoint, LoadBalancer, Outcome, Pick};
use rpc_core::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent, WatchStream};
use tokio::sync::watch;

/// Every published instance: service key -> address -> instance.
type Services = BTreeMap<ServiceKey, BTreeMap<String, ServiceInstance>>;

/// An in-process registry: one map of instances, and watches that follow it.
///
/// Share it as `Arc<TinyRegistry>` between the servers that publish
/// and the clients that discover.
#[derive(Debug)]
pub struct TinyRegistry {
    services: watch::Sender<Services>,
}

impl Default for TinyRegistry {
    fn default() -> Self {
        TinyRegistry::new()
    }
}

impl TinyRegistry {
    /// An empty registry.
    pub fn new() -> TinyRegistry {
        TinyRegistry {
            services: watch::Sender::new(Services::new()),
        }
    }
}

/// The instances of `key`, sorted by address.
fn instances(services: &Services, key: &ServiceKey) -> Vec<ServiceInstance> {
    services
        .get(key)
        .map(|nodes| nodes.values().cloned().collect())
        .unwrap_or_default()
}

#[rpc_core::async_trait]
impl Registry for TinyRegistry {
    fn backend(&self) -> &'static str {
        "tiny"
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.services.send_modify(|services| {
            services
                .entry(instance.key())
                .or_default()
                .insert(instance.address(), instance.clone());
        });
        Ok(())
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.services.send_if_modified(|services| {
            let key = instance.key();
            let Some(nodes) = services.get_mut(&key) else {
                return false;
            };
            let removed = nodes.remove(&instance.address()).is_some();
            if nodes.is_empty() {
                services.remove(&key);
            }
            removed
        });
        Ok(())
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        Ok(instances(&self.services.borrow(), key))
    }

    async fn watch(&self, key: &ServiceKey) -> Result<WatchStream, RegistryError> {
        let mut changes = self.services.subscribe();
        let (events, stream) = rpc_core::registry::watch_channel(16);
        let key = key.clone();
        tokio::spawn(async move {
            let mut last: Option<Vec<ServiceInstance>> = None;
            loop {
                let now = instances(&changes.borrow_and_update(), &key);
                if last.as_ref() != Some(&now) {
                    if events
                        .send(WatchEvent::Snapshot(now.clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = events.closed() => return,
                }
            }
        });
        Ok(stream)
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        Ok(self.services.borrow().keys().cloned().collect())
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        self.services.send_replace(Services::new());
        Ok(())
    }
}

/// Gives each allowed endpoint a turn, and counts its picks and the attempts' outcomes.
#[derive(Debug, Default)]
pub struct TakeTurns {
    next: AtomicUsize,
    picks: AtomicUsize,
    answered: AtomicUsize,
    failed: AtomicUsize,
}

impl TakeTurns {
    /// How many endpoints it picked.
    pub fn picks(&self) -> usize {
        self.picks.load(Ordering::Relaxed)
    }

    /// How many attempts the provider answered (successfully or with an application error).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    /// How many attempts got no answer.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

impl LoadBalancer for TakeTurns {
    fn name(&self) -> &'static str {
        "take-turns"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        let len = pick.endpoints().len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        let chosen = pick.first_allowed_from(start)?;
        self.picks.fetch_add(1, Ordering::Relaxed);
        Some(chosen)
    }

    fn on_result(&self, _endpoint: &Endpoint, outcome: Outcome, _latency: Duration) {
        if outcome.answered() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
