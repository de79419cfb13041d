//! Rate-limited warnings: a warning that a peer can trigger at will is logged at most a few
//! times a second per call site, and the next one logged says how many were left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Warnings logged per site per window.
const PER_WINDOW: u64 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(1);

/// One call site's budget. A `static` per site:
///
/// ```text
/// static LIMIT: WarnLimit = WarnLimit::new();
/// if let Some(suppressed) = LIMIT.allow() {
///     tracing::warn!(suppressed, "…");
/// }
/// ```
pub(crate) struct WarnLimit {
    /// The window the counts belong to, as whole windows since the process's first warning.
    window: AtomicU64,
    /// Warnings logged in that window.
    logged: AtomicU64,
    /// Warnings left out since the last one logged.
    suppressed: AtomicU64,
}

impl WarnLimit {
    pub(crate) const fn new() -> WarnLimit {
        WarnLimit {
            window: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(left out since the last logged)` when this warning may be logged; `None` (and it
    /// is counted) when the site is over its budget.
    pub(crate) fn allow(&self) -> Option<u64> {
        self.allow_at(current_window())
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let window = self.window.load(Ordering::Acquire);
        if now != window
            && self
                .window
                .compare_exchange(window, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.logged.store(0, Ordering::Release);
        }
        if self.logged.fetch_add(1, Ordering::AcqRel) < PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::AcqRel))
        } else {
            self.suppressed.fetch_add(1, Ordering::AcqRel);
            None
        }
    }
}

fn current_window() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    (elapsed.as_nanos() / WINDOW.as_nanos()) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_logs_a_few_then_reports_what_it_left_out() {
        let limit = WarnLimit::new();
        let logged: Vec<Option<u64>> = (0..100).map(|_| limit.allow_at(1)).collect();
        assert_eq!(logged.iter().flatten().count(), PER_WINDOW as usize);
        assert!(logged[..PER_WINDOW as usize].iter().all(|s| *s == Some(0)));
        assert_eq!(limit.allow_at(2), Some(100 - PER_WINDOW));
        assert_eq!(limit.allow_at(2), Some(0));
    }
}
