//! Keeping the directory's watches bounded: entries no call used for the idle timeout are
//! dropped with their watches, and at most `max_watches` are live at once, so a gateway that
//! calls with caller-supplied keys cannot grow watches and tasks forever.
//!
//! An entry someone still holds (an `Arc<ServiceEntry>` outside the directory) is never
//! dropped; the next lookup of a dropped key discovers it again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Context, ServiceEntry};

/// References to an entry that the directory itself holds: its map and its watch task.
const OWN_REFERENCES: usize = 2;
/// The sweeper's shortest period.
const MIN_SWEEP: Duration = Duration::from_millis(50);

/// Whether someone outside the directory holds `entry`.
fn held(entry: &Arc<ServiceEntry>) -> bool {
    Arc::strong_count(entry) > OWN_REFERENCES
}

/// Starts the sweeper once, if there is an idle timeout.
pub(super) fn start_sweeper(ctx: &Arc<Context>) {
    let Some(idle) = ctx.config.idle_timeout else {
        return;
    };
    if ctx.sweeper_started.swap(true, Ordering::Relaxed) {
        return;
    }
    let weak = Arc::downgrade(ctx);
    let shutdown = ctx.shutdown.clone();
    let period = (idle / 4).max(MIN_SWEEP);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let Some(ctx) = weak.upgrade() else { return };
            let cutoff = ctx.now().saturating_sub(idle.as_millis() as u64);
            let dropped = drop_where(
                &ctx,
                |entry| entry.last_used() <= cutoff && !held(entry),
                usize::MAX,
            );
            if dropped > 0 {
                tracing::info!(dropped, live_watches = ctx.ready.load().len(), idle = ?idle, "dropped idle directory entries and their watches");
            }
        }
    });
}

/// Makes room for one more entry under `max_watches` by dropping the least recently used
/// entries nobody holds; returns whether there is room.
pub(super) fn make_room(ctx: &Context) -> bool {
    let max = ctx.config.max_watches.max(1);
    let live = ctx.ready.load().len();
    if live < max {
        return true;
    }
    let excess = live + 1 - max;
    let mut candidates: Vec<(u64, String)> = ctx
        .ready
        .load()
        .iter()
        .filter(|(_, entry)| !held(entry))
        .map(|(name, entry)| (entry.last_used(), name.clone()))
        .collect();
    candidates.sort_unstable();
    let oldest: std::collections::HashSet<String> = candidates
        .into_iter()
        .take(excess)
        .map(|(_, name)| name)
        .collect();
    let dropped = drop_where(
        ctx,
        |entry| oldest.contains(&entry.key().to_string()),
        excess,
    );
    if dropped > 0 {
        tracing::debug!(
            dropped,
            max_watches = max,
            "directory at its watch bound; dropped the least recently used entries"
        );
    }
    ctx.ready.load().len() < max
}

/// Removes at most `limit` entries matching `drop` from the map and stops their watches.
/// The entries are chosen before the map is copied, since the copy holds references too.
fn drop_where(ctx: &Context, drop: impl Fn(&Arc<ServiceEntry>) -> bool, limit: usize) -> usize {
    let names: Vec<String> = ctx
        .ready
        .load()
        .iter()
        .filter(|(_, entry)| drop(entry))
        .take(limit)
        .map(|(name, _)| name.clone())
        .collect();
    if names.is_empty() {
        return 0;
    }
    let mut removed = Vec::new();
    ctx.ready.rcu(|ready| {
        removed.clear();
        let mut kept = std::collections::HashMap::clone(ready);
        removed.extend(names.iter().filter_map(|name| kept.remove(name)));
        kept
    });
    for entry in &removed {
        entry.stop().cancel();
    }
    removed.len()
}
