//! The conformance [`Backend`] on the in-process `memory://` registry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use rpc_core::registry::Registry;
use rpc_registry::MemoryRegistry;

use crate::conformance::Backend;

/// A `memory://<unique name>` registry; clients connect through `rpc_registry::connect`.
#[derive(Debug)]
pub struct MemoryBackend {
    name: String,
}

impl MemoryBackend {
    /// A backend on a registry name no other test uses.
    pub fn new() -> MemoryBackend {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        MemoryBackend {
            name: format!("conformance-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// The `memory://` URL of the registry.
    pub fn url(&self) -> String {
        format!("memory://{}", self.name)
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn connect(&self) -> BoxFuture<'_, Arc<dyn Registry>> {
        Box::pin(async move {
            rpc_registry::connect(&self.url())
                .await
                .unwrap_or_else(|e| panic!("connect {}: {e}", self.url()))
        })
    }

    fn put_raw<'a>(&'a self, path: &'a str, value: &'a [u8]) -> BoxFuture<'a, ()> {
        Box::pin(async move { MemoryRegistry::named(&self.name).put_raw(path, value) })
    }

    fn get_raw<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { MemoryRegistry::named(&self.name).get_raw(path) })
    }
}
