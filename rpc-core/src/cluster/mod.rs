//! The consumer side of discovery: which providers exist ([`Directory`]), which one takes a
//! call (balancing), and what happens when it fails (fault tolerance).

mod directory;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

pub use directory::{Directory, ServiceEntry};

use crate::client::{send, CallOptions, Pool};
use crate::client::Call;
use crate::registry::Registry;
use crate::RpcError;

/// Settings for balancing, fault tolerance and discovery.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Attempts per call under fail-over, the first included.
    pub max_attempts: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { max_attempts: 3 }
    }
}

/// Routes calls over the providers a registry lists.
pub(crate) struct Cluster {
    directory: Directory,
    config: ClusterConfig,
    next: AtomicUsize,
}

impl Cluster {
    pub(crate) fn new(registry: Arc<dyn Registry>, config: ClusterConfig, _pool: Arc<Pool>) -> Cluster {
        Cluster {
            directory: Directory::new(registry),
            config,
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.directory.backend()
    }

    pub(crate) async fn invoke(&self, pool: &Pool, call: &Call) -> Result<Bytes, RpcError> {
        let entry = self.directory.service(&call.service.service_key()).await?;
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut last_error = None;
        for _ in 0..self.config.max_attempts.max(1) {
            let instances = entry.instances();
            let candidates: Vec<SocketAddr> = instances
                .iter()
                .filter_map(|i| i.address().parse().ok())
                .filter(|a| !tried.contains(a))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let addr = candidates[self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()];
            match send(pool, addr, call).await {
                Ok(body) => return Ok(body),
                Err(e) if e.is_retryable(call.method.idempotent) => {
                    tried.push(addr);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| RpcError::NoProvider {
            service: call.service.key.to_string(),
        }))
    }

    pub(crate) fn on_final_error<R: DeserializeOwned>(
        &self,
        _call: &Call,
        error: RpcError,
        _options: &CallOptions,
    ) -> Result<R, RpcError> {
        Err(error)
    }
}
