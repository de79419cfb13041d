//! `round-robin`: each endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{LoadBalancer, Pick};

/// Hands calls to each endpoint in turn; skipped endpoints pass their turn to the next one.
/// The counter is per snapshot, so services sharing a client do not disturb each other.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

#[derive(Default)]
struct Counter(AtomicUsize);

impl LoadBalancer for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        let len = pick.endpoints().len();
        if len == 0 {
            return None;
        }
        let start = pick.members().with_state(
            |_| Counter::default(),
            |c| c.0.fetch_add(1, Ordering::Relaxed),
        );
        pick.first_allowed_from(start % len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::cluster::endpoint::testing::members;

    #[test]
    fn gives_each_a_third() {
        let m = members(&[(1, 100), (2, 100), (3, 100)]);
        let counts = distribution(&RoundRobin, &m, 3000);
        assert_shares(&counts, &[1.0 / 3.0; 3], 0.05);
        assert_eq!(counts, [1000, 1000, 1000]);
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(&RoundRobin, &members(&[(1, 100), (2, 100), (3, 100)]));
    }
}
