//! The calls running on one server connection, by request id, so a cancel can abort one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

/// The calls running on one connection, by request id, so a cancel can abort one.
#[derive(Default)]
pub(crate) struct InFlight {
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    count: AtomicUsize,
}

impl InFlight {
    pub(crate) fn try_reserve(&self, max: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Spawns a handler and records it under `id`. The map stays locked until the handle is
    /// in, so a handler that finishes at once cannot leave a stale entry behind.
    pub(crate) fn spawn<F>(&self, id: u64, handlers: &TaskTracker, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.lock();
        let handle = handlers.spawn(work);
        tasks.insert(id, handle.abort_handle());
    }

    pub(crate) fn finish(&self, id: u64) {
        self.lock().remove(&id);
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn cancel(&self, id: u64) {
        if let Some(handle) = self.lock().remove(&id) {
            handle.abort();
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}
