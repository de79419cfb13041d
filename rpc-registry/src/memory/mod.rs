//! `memory://[name]`: an in-process registry, for embedding, single-process apps and tests.
//!
//! Registries are shared by name within the process: every `connect("memory://x")` sees the
//! same nodes. [`MemoryRegistry::new`] makes a private one. The store keeps the layout of
//! DESIGN.md (paths `<root>/<name>:<version>/<host>:<port>`, layout JSON values), so raw nodes
//! written with [`MemoryRegistry::put_raw`] behave exactly like nodes a tool writes into etcd.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use futures::stream::BoxStream;
use rpc_core::documents::{DocumentEvent, DocumentKind, DocumentStream};
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent};
use tokio::sync::watch;

use crate::documents;
use crate::layout::{self, WarnOnce};

mod follow;

const BACKEND: &str = "memory";
const ROOT: &str = "/rpc";

/// One node of the store.
#[derive(Debug, Clone)]
struct Node {
    value: Vec<u8>,
    revision: i64,
    /// The handle that registered it; `None` for raw nodes.
    owner: Option<u64>,
}

/// The nodes of one named registry, and a revision counter that watchers follow.
#[derive(Debug, Default)]
struct Store {
    nodes: BTreeMap<String, Node>,
    revision: i64,
}

/// State shared by every handle on one registry.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    /// The store's revision after every change; watchers wake on it.
    changed: watch::Sender<i64>,
    warned: WarnOnce,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed: watch::channel(0).0,
            warned: WarnOnce::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves the map itself consistent.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies one change and wakes the watchers.
    fn update(&self, change: impl FnOnce(&mut Store, i64) -> bool) {
        let revision = {
            let mut store = self.lock();
            let next = store.revision + 1;
            if !change(&mut store, next) {
                return;
            }
            store.revision = next;
            next
        };
        self.changed.send_replace(revision);
    }

    fn snapshot(&self, root: &str, key: &ServiceKey) -> Vec<ServiceInstance> {
        let prefix = layout::service_prefix(root, key);
        let store = self.lock();
        let nodes = store
            .nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(path, node)| (path.as_str(), node.value.as_slice(), node.revision));
        layout::parse_nodes(BACKEND, root, nodes, &self.warned)
    }
}

/// The process-wide registries, by name.
fn named_registries() -> &'static Mutex<HashMap<String, Arc<Shared>>> {
    static NAMED: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
    NAMED.get_or_init(Default::default)
}

/// Hands out a distinct id to every handle, so shutdown removes only the handle's own nodes.
fn next_handle_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An in-process [`Registry`].
///
/// Each handle remembers what it registered: [`Registry::shutdown`] removes those nodes and
/// closes the handle (its watch streams end), while other handles on the same registry go on.
/// Watches deliver full snapshots, the current one first, and a new one after every change
/// that alters the watched key's list.
#[derive(Debug)]
pub struct MemoryRegistry {
    shared: Arc<Shared>,
    id: u64,
    /// `true` once shut down; dropping the handle also ends its watch streams.
    closed: watch::Sender<bool>,
}

impl MemoryRegistry {
    /// A private registry, seen only through this handle.
    pub fn new() -> MemoryRegistry {
        MemoryRegistry::with_shared(Shared::new())
    }

    /// A handle on the process-wide registry called `name` (what `memory://name` connects
    /// to); created on first use and kept for the life of the process.
    pub fn named(name: &str) -> MemoryRegistry {
        let shared = {
            let mut named = named_registries()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            named
                .entry(name.to_string())
                .or_insert_with(Shared::new)
                .clone()
        };
        MemoryRegistry::with_shared(shared)
    }

    /// Another handle on the same registry as this one, with its own set of registered
    /// instances (as a second process would have).
    pub fn handle(&self) -> MemoryRegistry {
        MemoryRegistry::with_shared(self.shared.clone())
    }

    fn with_shared(shared: Arc<Shared>) -> MemoryRegistry {
        MemoryRegistry {
            shared,
            id: next_handle_id(),
            closed: watch::channel(false).0,
        }
    }

    /// Writes a raw node, as a tool would: any path, any bytes, owned by no handle.
    ///
    /// A tool for embedding and for tests: a value that is not layout JSON, or a path that is
    /// not `<root>/<name>:<version>/<host>:<port>`, is stored as given and then skipped (with
    /// one warning) by discover and watch; a valid one is a real provider to every consumer.
    pub fn put_raw(&self, path: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        self.shared.update(|store, revision| {
            store.nodes.insert(
                path.to_string(),
                Node {
                    value,
                    revision,
                    owner: None,
                },
            );
            true
        });
    }

    /// Reads a raw node's value, as a tool would.
    pub fn get_raw(&self, path: &str) -> Option<Vec<u8>> {
        self.shared.lock().nodes.get(path).map(|n| n.value.clone())
    }

    /// Deletes a raw node, as a tool would; returns whether it existed.
    pub fn delete_raw(&self, path: &str) -> bool {
        let mut existed = false;
        self.shared.update(|store, _| {
            existed = store.nodes.remove(path).is_some();
            existed
        });
        existed
    }

    fn check_open(&self) -> Result<(), RegistryError> {
        if *self.closed.borrow() {
            Err(RegistryError::Closed { registry: BACKEND })
        } else {
            Ok(())
        }
    }
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        MemoryRegistry::new()
    }
}

#[async_trait::async_trait]
impl Registry for MemoryRegistry {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_open()?;
        let path = layout::node_path(ROOT, instance);
        let value = instance.to_json().into_bytes();
        let owner = Some(self.id);
        self.shared.update(|store, revision| {
            store.nodes.insert(
                path,
                Node {
                    value,
                    revision,
                    owner,
                },
            );
            true
        });
        Ok(())
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_open()?;
        self.delete_raw(&layout::node_path(ROOT, instance));
        Ok(())
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.check_open()?;
        Ok(self.shared.snapshot(ROOT, key))
    }

    async fn watch(
        &self,
        key: &ServiceKey,
    ) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
        self.check_open()?;
        let key = key.clone();
        let read = move |shared: &Shared| shared.snapshot(ROOT, &key);
        Ok(self.follow(read, WatchEvent::Snapshot))
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.check_open()?;
        let prefix = layout::root_prefix(ROOT);
        let store = self.shared.lock();
        let keys: BTreeSet<ServiceKey> = store
            .nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter_map(|(path, _)| layout::key_of_path(ROOT, path).ok())
            .collect();
        Ok(keys.into_iter().collect())
    }

    async fn read_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
    ) -> Result<Option<String>, RegistryError> {
        self.check_open()?;
        Ok(self.shared.document(key, kind))
    }

    async fn write_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
        text: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.check_open()?;
        let path = kind.path(ROOT, &key.to_string());
        match text {
            Some(text) => {
                documents::check_size(BACKEND, &path, text)?;
                self.put_raw(&path, text);
            }
            None => {
                self.delete_raw(&path);
            }
        }
        Ok(())
    }

    async fn watch_documents(&self, key: &ServiceKey) -> Result<DocumentStream, RegistryError> {
        self.check_open()?;
        let key = key.clone();
        let read = move |shared: &Shared| shared.documents(&key);
        Ok(self.follow(read, DocumentEvent::Snapshot))
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        let id = self.id;
        self.shared.update(|store, _| {
            let before = store.nodes.len();
            store.nodes.retain(|_, node| node.owner != Some(id));
            store.nodes.len() != before
        });
        self.closed.send_replace(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn instance(port: u16) -> ServiceInstance {
        let mut inst =
            ServiceInstance::new(&ServiceKey::new("mem.Test", "1.0.0"), "127.0.0.1", port);
        inst.registered_at_ms = 1;
        inst
    }

    #[tokio::test]
    async fn named_registries_are_shared_and_private_ones_are_not() {
        let a = MemoryRegistry::named("memory-unit-shared");
        let b = MemoryRegistry::named("memory-unit-shared");
        let private = MemoryRegistry::new();
        a.register(&instance(1)).await.unwrap();
        let key = instance(1).key();
        assert_eq!(b.discover(&key).await.unwrap(), vec![instance(1)]);
        assert!(private.discover(&key).await.unwrap().is_empty());
        a.shutdown().await.unwrap();
        assert!(b.discover(&key).await.unwrap().is_empty());
        assert!(matches!(
            a.register(&instance(1)).await,
            Err(RegistryError::Closed { .. })
        ));
    }

    #[tokio::test]
    async fn watch_delivers_current_first_then_changes() {
        let reg = MemoryRegistry::new();
        let key = instance(1).key();
        reg.register(&instance(1)).await.unwrap();
        let mut watch = reg.watch(&key).await.unwrap();
        assert_eq!(
            watch.next().await,
            Some(WatchEvent::Snapshot(vec![instance(1)]))
        );
        reg.put_raw("/rpc/mem.Test:1.0.0/127.0.0.1:3", "not json");
        reg.register(&instance(2)).await.unwrap();
        let mut last = None;
        while last != Some(WatchEvent::Snapshot(vec![instance(1), instance(2)])) {
            last = watch.next().await;
        }
        reg.shutdown().await.unwrap();
        while let Some(event) = watch.next().await {
            assert!(matches!(event, WatchEvent::Snapshot(_)));
        }
    }

    #[tokio::test]
    async fn services_lists_distinct_keys() {
        let reg = MemoryRegistry::new();
        reg.register(&instance(1)).await.unwrap();
        reg.register(&instance(2)).await.unwrap();
        reg.put_raw("/rpc/bad", "x");
        assert_eq!(reg.services().await.unwrap(), vec![instance(1).key()]);
    }
}
