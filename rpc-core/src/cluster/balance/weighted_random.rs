//! `weighted-random`: at random, in proportion to the instances' weights.

use rand::Rng;

use super::{LoadBalancer, Pick};
use crate::cluster::endpoint::Members;

/// Picks at random with probability proportional to each endpoint's weight. Weight 0 is
/// never picked unless every allowed endpoint has weight 0, then all are equally likely.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedRandom;

/// Running sums of the weights, for a binary search per pick.
struct Cumulative {
    sums: Vec<u64>,
    total: u64,
}

impl Cumulative {
    fn build(members: &Members) -> Cumulative {
        let mut total = 0u64;
        let sums = members
            .endpoints()
            .iter()
            .map(|e| {
                total += u64::from(e.weight());
                total
            })
            .collect();
        Cumulative { sums, total }
    }
}

impl LoadBalancer for WeightedRandom {
    fn name(&self) -> &'static str {
        "weighted-random"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        if pick.endpoints().is_empty() {
            return None;
        }
        let mut rng = rand::thread_rng();
        let fast = pick.members().with_state(Cumulative::build, |c| {
            if c.total == 0 {
                return None;
            }
            let target = rng.gen_range(0..c.total);
            let index = c.sums.partition_point(|&sum| sum <= target);
            pick.is_allowed(index).then_some(index)
        });
        fast.or_else(|| draw_among_allowed(pick))
    }
}

/// A weighted draw over the allowed endpoints only, without allocating: O(endpoints).
pub(crate) fn draw_among_allowed(pick: &Pick<'_>) -> Option<usize> {
    let mut rng = rand::thread_rng();
    let allowed_weight: u64 = (0..pick.endpoints().len())
        .filter(|&i| pick.is_allowed(i))
        .map(|i| u64::from(pick.endpoints()[i].weight()))
        .sum();
    if allowed_weight == 0 {
        return match pick.allowed_count() {
            0 => None,
            n => pick.nth_allowed(rng.gen_range(0..n)),
        };
    }
    let mut target = rng.gen_range(0..allowed_weight);
    for (i, endpoint) in pick.endpoints().iter().enumerate() {
        if !pick.is_allowed(i) {
            continue;
        }
        let weight = u64::from(endpoint.weight());
        if target < weight {
            return Some(i);
        }
        target -= weight;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::cluster::endpoint::testing::members;

    #[test]
    fn follows_weights_1_2_3() {
        let m = members(&[(1, 1), (2, 2), (3, 3)]);
        let counts = distribution(&WeightedRandom, &m, 6000);
        assert_shares(&counts, &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0], 0.05);
    }

    #[test]
    fn zero_weight_is_not_picked_and_all_zero_is_uniform() {
        let m = members(&[(1, 0), (2, 10)]);
        assert_eq!(distribution(&WeightedRandom, &m, 200)[0], 0);
        let zero = members(&[(1, 0), (2, 0)]);
        let counts = distribution(&WeightedRandom, &zero, 2000);
        assert_shares(&counts, &[0.5, 0.5], 0.05);
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(&WeightedRandom, &members(&[(1, 1), (2, 2), (3, 3)]));
    }
}
