//! The consumer's cache of instance lists, one per service key, kept current by the
//! registry's watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use futures::StreamExt;
use tokio::sync::OnceCell;

use crate::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent};

/// The instance lists of every service key this consumer has looked up.
pub struct Directory {
    registry: Arc<dyn Registry>,
    entries: Mutex<HashMap<ServiceKey, Arc<OnceCell<Arc<ServiceEntry>>>>>,
}

/// One service key's current instances; reads take no lock.
pub struct ServiceEntry {
    instances: ArcSwap<Vec<ServiceInstance>>,
}

impl ServiceEntry {
    /// The current instances.
    pub fn instances(&self) -> Arc<Vec<ServiceInstance>> {
        self.instances.load_full()
    }
}

impl Directory {
    /// A directory over `registry`.
    pub fn new(registry: Arc<dyn Registry>) -> Directory {
        Directory {
            registry,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The registry backend's name.
    pub fn backend(&self) -> &'static str {
        self.registry.backend()
    }

    /// The entry for `key`, discovering it and starting its watch on first use.
    pub async fn service(&self, key: &ServiceKey) -> Result<Arc<ServiceEntry>, RegistryError> {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(entries.entry(key.clone()).or_default())
        };
        cell.get_or_try_init(|| async {
            let mut stream = self.registry.watch(key).await?;
            let first = match stream.next().await {
                Some(WatchEvent::Snapshot(list)) => list,
                _ => Vec::new(),
            };
            let entry = Arc::new(ServiceEntry {
                instances: ArcSwap::from_pointee(first),
            });
            let weak = Arc::downgrade(&entry);
            tokio::spawn(async move {
                while let Some(event) = stream.next().await {
                    let Some(entry) = weak.upgrade() else { break };
                    if let WatchEvent::Snapshot(list) = event {
                        entry.instances.store(Arc::new(list));
                    }
                }
            });
            Ok(entry)
        })
        .await
        .cloned()
    }
}
