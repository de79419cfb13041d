//! The nodes this registry client registered and keeps: path -> value, and the store
//! revision of the last put that made each one ours (older events about it are history).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// One own node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Own {
    /// The layout JSON we put.
    pub(crate) value: String,
    /// The revision of our last put of it (0 until the first one is confirmed).
    pub(crate) revision: i64,
}

/// Every own node, behind a short-lived lock (never held across an await).
#[derive(Debug, Default)]
pub(crate) struct OwnNodes {
    nodes: Mutex<BTreeMap<String, Own>>,
}

impl OwnNodes {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Own>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping `path` with `value` (replacing what was kept for it).
    pub(crate) fn insert(&self, path: &str, value: &str) {
        self.lock().insert(
            path.to_string(),
            Own {
                value: value.to_string(),
                revision: 0,
            },
        );
    }

    /// Stops keeping `path`; returns what was kept.
    pub(crate) fn remove(&self, path: &str) -> Option<Own> {
        self.lock().remove(path)
    }

    /// Stops keeping `path` if it still holds `value` (a newer register of it stays).
    pub(crate) fn remove_if(&self, path: &str, value: &str) {
        let mut nodes = self.lock();
        if nodes.get(path).is_some_and(|own| own.value == value) {
            nodes.remove(path);
        }
    }

    /// What is kept for `path`.
    pub(crate) fn get(&self, path: &str) -> Option<Own> {
        self.lock().get(path).cloned()
    }

    /// Whether `path` is kept with `value`.
    pub(crate) fn holds(&self, path: &str, value: &str) -> bool {
        self.lock().get(path).is_some_and(|own| own.value == value)
    }

    /// Records that our put of `path` with `value` committed at `revision`.
    pub(crate) fn confirmed(&self, path: &str, value: &str, revision: i64) {
        if let Some(own) = self.lock().get_mut(path) {
            if own.value == value {
                own.revision = own.revision.max(revision);
            }
        }
    }

    /// Every kept node, copied out.
    pub(crate) fn all(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(path, own)| (path.clone(), own.value.clone()))
            .collect()
    }

    /// How many nodes are kept.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Stops keeping everything.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}
