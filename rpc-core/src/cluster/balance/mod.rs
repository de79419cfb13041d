//! Load balancing: the [`LoadBalancer`] trait and the built-in strategies, chosen by type or
//! by name ([`BalancerKind`]).
//!
//! A balancer picks an index into a [`Pick`]'s endpoints, skipping the ones the pick does
//! not allow (those that already failed this call, and ejected ones). Per-snapshot state
//! (a hash ring, a weighted sequence, a counter) lives in [`Members::with_state`], so it is
//! rebuilt exactly when membership changes and never shared between services.

mod consistent_hash;
mod least_loaded;
mod random;
mod round_robin;
mod weighted_random;
mod weighted_round_robin;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use consistent_hash::ConsistentHash;
pub use least_loaded::LeastLoaded;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_random::WeightedRandom;
pub use weighted_round_robin::WeightedRoundRobin;

use super::endpoint::{Endpoint, Members};
use super::outcome::Outcome;

/// Picks the provider for each call, and hears how each attempt went.
///
/// Implementations must be cheap: `pick` runs on every call, on many threads at once. Keep
/// per-snapshot state in [`Members::with_state`] and per-address statistics in the
/// [`Endpoint`] (in-flight calls, latency); avoid locks and allocation.
pub trait LoadBalancer: Send + Sync + 'static {
    /// The strategy's name, for logs (`round-robin`, ...).
    fn name(&self) -> &'static str;

    /// The index of the chosen endpoint in `pick.endpoints()`, or `None` if no endpoint is
    /// allowed. Must return an allowed index ([`Pick::is_allowed`]) when there is one.
    fn pick(&self, pick: &Pick<'_>) -> Option<usize>;

    /// Told after every attempt: which endpoint, how it ended, and how long it took. The
    /// endpoint's own statistics are already updated. The default does nothing.
    fn on_result(&self, endpoint: &Endpoint, outcome: Outcome, latency: Duration) {
        let _ = (endpoint, outcome, latency);
    }
}

/// What a balancer chooses from: a snapshot, the call's hash key, and which endpoints are
/// allowed for this attempt.
#[derive(Debug, Clone, Copy)]
pub struct Pick<'a> {
    members: &'a Members,
    hash_key: Option<u64>,
    exclude: &'a [SocketAddr],
    skip_ejected: bool,
    /// Per endpoint, whether governance routing lets this call reach it (`None`: all).
    routed: Option<&'a [bool]>,
}

impl<'a> Pick<'a> {
    /// A pick over `members` that skips the addresses in `exclude`, and ejected endpoints
    /// when `skip_ejected` is set.
    pub fn new(
        members: &'a Members,
        hash_key: Option<u64>,
        exclude: &'a [SocketAddr],
        skip_ejected: bool,
    ) -> Pick<'a> {
        Pick {
            members,
            hash_key,
            exclude,
            skip_ejected,
            routed: None,
        }
    }

    /// The same pick, limited to the endpoints governance routing selected for the call
    /// (`mask[i]` for endpoint `i`). Disabled endpoints are never allowed, with or without it.
    pub fn routed(mut self, mask: Option<&'a [bool]>) -> Pick<'a> {
        self.routed = mask;
        self
    }

    /// A pick over every endpoint of `members`.
    pub fn all(members: &'a Members, hash_key: Option<u64>) -> Pick<'a> {
        Pick::new(members, hash_key, &[], false)
    }

    /// The snapshot picked from.
    pub fn members(&self) -> &'a Members {
        self.members
    }

    /// Its endpoints.
    pub fn endpoints(&self) -> &'a [Endpoint] {
        self.members.endpoints()
    }

    /// The call's key for hash-based strategies, if it has one.
    pub fn hash_key(&self) -> Option<u64> {
        self.hash_key
    }

    /// Whether the endpoint at `index` may take this attempt.
    pub fn is_allowed(&self, index: usize) -> bool {
        match self.endpoints().get(index) {
            Some(endpoint) => {
                let ejected = self.skip_ejected && endpoint.is_ejected();
                let routed_out = self
                    .routed
                    .is_some_and(|mask| !mask.get(index).copied().unwrap_or(false));
                !ejected
                    && !endpoint.is_disabled()
                    && !routed_out
                    && !self.exclude.contains(&endpoint.addr())
            }
            None => false,
        }
    }

    /// How many endpoints are allowed.
    pub fn allowed_count(&self) -> usize {
        (0..self.endpoints().len())
            .filter(|&i| self.is_allowed(i))
            .count()
    }

    /// The index of the `n`-th allowed endpoint (from 0).
    pub fn nth_allowed(&self, n: usize) -> Option<usize> {
        (0..self.endpoints().len())
            .filter(|&i| self.is_allowed(i))
            .nth(n)
    }

    /// The first allowed index at or after `start`, wrapping around.
    pub fn first_allowed_from(&self, start: usize) -> Option<usize> {
        let len = self.endpoints().len();
        (0..len)
            .map(|offset| (start + offset) % len)
            .find(|&i| self.is_allowed(i))
    }
}

/// The built-in strategies, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BalancerKind {
    /// `round-robin`: each endpoint in turn (the default).
    #[default]
    RoundRobin,
    /// `random`: uniformly at random.
    Random,
    /// `weighted-random`: at random, in proportion to the instances' weights.
    WeightedRandom,
    /// `weighted-round-robin`: in turn, in proportion to weights, interleaved smoothly
    /// (nginx's smooth weighted round-robin).
    WeightedRoundRobin,
    /// `consistent-hash`: by the call's hash key on a ring of virtual nodes.
    ConsistentHash,
    /// `least-loaded`: the less loaded of two random endpoints, by in-flight calls and
    /// latency.
    LeastLoaded,
}

impl BalancerKind {
    /// Every strategy, in documentation order.
    pub const ALL: [BalancerKind; 6] = [
        BalancerKind::RoundRobin,
        BalancerKind::Random,
        BalancerKind::WeightedRandom,
        BalancerKind::WeightedRoundRobin,
        BalancerKind::ConsistentHash,
        BalancerKind::LeastLoaded,
    ];

    /// The configuration name, e.g. `weighted-round-robin`.
    pub fn name(self) -> &'static str {
        match self {
            BalancerKind::RoundRobin => "round-robin",
            BalancerKind::Random => "random",
            BalancerKind::WeightedRandom => "weighted-random",
            BalancerKind::WeightedRoundRobin => "weighted-round-robin",
            BalancerKind::ConsistentHash => "consistent-hash",
            BalancerKind::LeastLoaded => "least-loaded",
        }
    }

    /// A balancer of this kind with default settings.
    pub fn build(self) -> Arc<dyn LoadBalancer> {
        match self {
            BalancerKind::RoundRobin => Arc::new(RoundRobin),
            BalancerKind::Random => Arc::new(Random),
            BalancerKind::WeightedRandom => Arc::new(WeightedRandom),
            BalancerKind::WeightedRoundRobin => Arc::new(WeightedRoundRobin),
            BalancerKind::ConsistentHash => Arc::new(ConsistentHash::default()),
            BalancerKind::LeastLoaded => Arc::new(LeastLoaded),
        }
    }
}

impl fmt::Display for BalancerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A balancer name that is not one of [`BalancerKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown load balancer {value:?}; expected one of: {valid}", valid = balancer_names())]
pub struct UnknownBalancer {
    /// The name given.
    pub value: String,
}

fn balancer_names() -> String {
    BalancerKind::ALL.map(BalancerKind::name).join(", ")
}

impl FromStr for BalancerKind {
    type Err = UnknownBalancer;

    /// Parses a name; case and `_` for `-` do not matter (`Least_Loaded` works).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.trim().to_ascii_lowercase().replace('_', "-");
        BalancerKind::ALL
            .into_iter()
            .find(|kind| kind.name() == normalized)
            .ok_or_else(|| UnknownBalancer {
                value: s.to_string(),
            })
    }
}

/// The balancer named `name`, with default settings.
pub fn by_name(name: &str) -> Result<Arc<dyn LoadBalancer>, UnknownBalancer> {
    Ok(name.parse::<BalancerKind>()?.build())
}

/// Shared test helpers for the strategies.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// How often each endpoint index is picked in `n` unrestricted picks.
    pub(crate) fn distribution(
        balancer: &dyn LoadBalancer,
        members: &Members,
        n: usize,
    ) -> Vec<usize> {
        let mut counts = vec![0; members.len()];
        for i in 0..n {
            let pick = Pick::all(members, Some(i as u64));
            let index = balancer.pick(&pick).expect("an endpoint is allowed");
            counts[index] += 1;
        }
        counts
    }

    /// Asserts that `counts` matches `shares` (fractions) within `tolerance` (a fraction).
    pub(crate) fn assert_shares(counts: &[usize], shares: &[f64], tolerance: f64) {
        let total: usize = counts.iter().sum();
        for (count, share) in counts.iter().zip(shares) {
            let got = *count as f64 / total as f64;
            assert!(
                (got - share).abs() <= tolerance,
                "share {got:.3} is not {share:.3} ± {tolerance} (counts {counts:?})"
            );
        }
    }

    /// Checks that `balancer` never returns an excluded endpoint.
    pub(crate) fn assert_respects_exclusions(balancer: &dyn LoadBalancer, members: &Members) {
        let excluded = [members.endpoints()[0].addr()];
        for i in 0..200 {
            let pick = Pick::new(members, Some(i), &excluded, true);
            let index = balancer.pick(&pick).expect("others remain");
            assert_ne!(index, 0, "{} picked an excluded endpoint", balancer.name());
        }
        let all: Vec<SocketAddr> = members.endpoints().iter().map(Endpoint::addr).collect();
        let pick = Pick::new(members, Some(1), &all, true);
        assert_eq!(
            balancer.pick(&pick),
            None,
            "{} picked with none allowed",
            balancer.name()
        );
        let empty = Members::empty();
        assert_eq!(balancer.pick(&Pick::all(&empty, None)), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_names_list_the_valid_ones() {
        for kind in BalancerKind::ALL {
            assert_eq!(kind.name().parse::<BalancerKind>(), Ok(kind));
            assert_eq!(kind.build().name(), kind.name());
        }
        assert_eq!("Least_Loaded".parse(), Ok(BalancerKind::LeastLoaded));
        let error = "fastest".parse::<BalancerKind>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"fastest\""), "{message}");
        for kind in BalancerKind::ALL {
            assert!(message.contains(kind.name()), "{message}");
        }
        assert!(by_name("random").is_ok());
    }
}
