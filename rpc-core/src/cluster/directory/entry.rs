//! One service key's entry: the current snapshot, readable without a lock or an await.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::resolve::Unresolved;
use crate::cluster::endpoint::Members;
use crate::cluster::governance::InForce;
use crate::registry::{ServiceInstance, ServiceKey};

/// One service key's providers as this consumer knows them.
///
/// Readers ([`instances`](Self::instances), [`members`](Self::members)) take no lock and
/// never wait: the directory's watch task swaps in a new snapshot when the registry changes.
pub struct ServiceEntry {
    key: ServiceKey,
    members: ArcSwap<Members>,
    stale: AtomicBool,
    protected: AtomicBool,
    /// Instances of the current list with no usable address (yet).
    unresolved: Mutex<Arc<Vec<Unresolved>>>,
    generation: watch::Sender<u64>,
    /// When a call last looked it up, in ms of the directory's clock.
    last_used: AtomicU64,
    /// Stops its watch when the directory drops it (idle, or over the watch bound).
    stop: CancellationToken,
    /// The governance documents in force; their overrides are applied to every snapshot.
    governance: ArcSwap<InForce>,
    /// Serializes swapping in a snapshot with swapping in governance, so neither undoes the
    /// other.
    writing: Mutex<()>,
}

impl std::fmt::Debug for ServiceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceEntry")
            .field("key", &self.key)
            .field("members", &self.members.load())
            .field("stale", &self.is_stale())
            .field("empty_protected", &self.is_empty_protected())
            .finish()
    }
}

impl ServiceEntry {
    pub(super) fn new(
        key: ServiceKey,
        (members, unresolved): (Members, Vec<Unresolved>),
        stale: bool,
        (stop, now): (CancellationToken, u64),
    ) -> ServiceEntry {
        ServiceEntry {
            last_used: AtomicU64::new(now),
            stop,
            key,
            members: ArcSwap::from_pointee(members),
            stale: AtomicBool::new(stale),
            protected: AtomicBool::new(false),
            unresolved: Mutex::new(Arc::new(unresolved)),
            generation: watch::Sender::new(0),
            governance: ArcSwap::from_pointee(InForce::default()),
            writing: Mutex::new(()),
        }
    }

    /// The listed instances that have no usable address yet (a host name that does not
    /// resolve, a bad port); the directory keeps trying them with backoff.
    pub fn unresolved(&self) -> Arc<Vec<Unresolved>> {
        Arc::clone(&self.unresolved.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The service key.
    pub fn key(&self) -> &ServiceKey {
        &self.key
    }

    /// The current instances, as the registry listed them.
    pub fn instances(&self) -> Arc<Vec<ServiceInstance>> {
        Arc::clone(self.members.load().instances())
    }

    /// The current snapshot: instances plus their parsed endpoints and health.
    pub fn members(&self) -> Arc<Members> {
        self.members.load_full()
    }

    /// A short-lived view of the current snapshot, for the call path (do not hold it across
    /// an await).
    pub(crate) fn load(&self) -> Guard<Arc<Members>> {
        self.members.load()
    }

    /// Whether the registry is unreachable, so the list may be out of date.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Whether the registry reported no instances and empty protection kept the last list.
    pub fn is_empty_protected(&self) -> bool {
        self.protected.load(Ordering::Relaxed)
    }

    /// Counts the snapshots swapped in so far (0 for the first).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits until a snapshot newer than `generation` is in place, and returns its
    /// generation. Returns at once if there already is one.
    pub async fn changed_since(&self, generation: u64) -> u64 {
        let mut receiver = self.generation.subscribe();
        let newer = match receiver.wait_for(|g| *g > generation).await {
            Ok(g) => Some(*g),
            // The sender lives in `self`, so it cannot be gone while we borrow `self`.
            Err(_) => None,
        };
        newer.unwrap_or_else(|| self.generation())
    }

    pub(super) fn store(&self, (members, unresolved): (Members, Vec<Unresolved>)) {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        *self.unresolved.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(unresolved);
        let governance = self.governance.load();
        let members = match governance.overrides() {
            Some(_) => governance.govern(&members),
            None => members,
        };
        self.members.store(Arc::new(members));
        self.generation.send_modify(|g| *g += 1);
    }

    /// The governance documents in force for this service.
    pub fn governance(&self) -> Arc<InForce> {
        self.governance.load_full()
    }

    /// Puts `governance` in force and re-applies its overrides to the current snapshot.
    pub(super) fn set_governance(&self, governance: InForce) {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let members = governance.govern(&self.members.load());
        self.governance.store(Arc::new(governance));
        self.members.store(Arc::new(members));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Records a use at `now` (the directory's clock, ms); cheap enough for every call.
    pub(super) fn touch(&self, now: u64) {
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// When it was last used (the directory's clock, ms).
    pub(super) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The token that stops its watch.
    pub(super) fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Whether the directory dropped it: its list is no longer kept current.
    pub fn is_dropped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Sets the stale flag; returns the previous value.
    pub(super) fn set_stale(&self, stale: bool) -> bool {
        self.stale.swap(stale, Ordering::Relaxed)
    }

    /// Sets the empty-protection flag; returns the previous value.
    pub(super) fn set_protected(&self, protected: bool) -> bool {
        self.protected.swap(protected, Ordering::Relaxed)
    }
}
