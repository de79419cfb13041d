//! A snapshot of what a server holds, for operators and for tests of its limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::admission::Admission;
use super::frame_reader::PartialBudget;

/// What a running server holds at one moment; see [`ServerHandle::stats`](super::ServerHandle::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections being served (reclaimed ones that are still closing not included).
    pub connections: usize,
    /// Reply bytes queued on all connections and not yet taken by their sockets.
    pub unsent_reply_bytes: usize,
    /// Bytes reserved for frames being received (frames over 16 KiB only), server-wide; never
    /// more than `max_partial_frame_bytes`.
    pub partial_frame_bytes: usize,
}

/// Where a server's stats come from.
pub(crate) struct StatsSource {
    pub admission: Arc<Admission>,
    pub unsent_total: Arc<AtomicUsize>,
    pub partial_budget: PartialBudget,
    pub partial_budget_size: usize,
}

impl StatsSource {
    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            connections: self.admission.len(),
            unsent_reply_bytes: self.unsent_total.load(Ordering::Relaxed),
            partial_frame_bytes: self
                .partial_budget_size
                .saturating_sub(self.partial_budget.available_permits()),
        }
    }
}
