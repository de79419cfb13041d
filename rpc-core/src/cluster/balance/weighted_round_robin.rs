//! `weighted-round-robin`: nginx's smooth weighted round-robin.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::weighted_random::draw_among_allowed;
use super::{LoadBalancer, Pick};
use crate::cluster::endpoint::Members;

/// The longest precomputed sequence; heavier weight sums are scaled down to fit.
const MAX_PERIOD: u64 = 16_384;

/// How far along the sequence a pick looks for an allowed endpoint before falling back to
/// a weighted random draw among the allowed ones.
const MAX_SCAN: usize = 16;

/// In turn, in proportion to weights, spread out evenly: weights 5:1:1 give
/// `a a b a c a a`, not `a a a a a b c`.
///
/// The algorithm is nginx's: every pick adds each weight to a running value, takes the
/// largest, and subtracts the total from it. It repeats after `sum of weights / gcd` picks,
/// so the sequence is computed once per snapshot and walked with an atomic counter: no lock
/// per pick. Weight 0 is never picked unless all weights are 0 (then it is plain round-robin).
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedRoundRobin;

struct Sequence {
    order: Vec<u32>,
    next: AtomicUsize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The smooth weighted round-robin order of one period for these weights.
pub(crate) fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    let mut weights: Vec<u64> = weights.to_vec();
    if weights.iter().all(|&w| w == 0) {
        weights.iter_mut().for_each(|w| *w = 1);
    }
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    weights.iter_mut().for_each(|w| *w /= divisor);
    let mut total: u64 = weights.iter().sum();
    if total > MAX_PERIOD {
        // Keep the proportions, within rounding, and every non-zero weight at least 1.
        weights
            .iter_mut()
            .filter(|w| **w > 0)
            .for_each(|w| *w = (*w * MAX_PERIOD / total).max(1));
        total = weights.iter().sum();
    }
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total as i64;
        order.push(best as u32);
    }
    order
}

impl Sequence {
    fn build(members: &Members) -> Sequence {
        let weights: Vec<u64> = members
            .endpoints()
            .iter()
            .map(|e| u64::from(e.weight()))
            .collect();
        Sequence {
            order: smooth_sequence(&weights),
            next: AtomicUsize::new(0),
        }
    }
}

impl LoadBalancer for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "weighted-round-robin"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        if pick.endpoints().is_empty() {
            return None;
        }
        let found = pick.members().with_state(Sequence::build, |seq| {
            if seq.order.is_empty() {
                return None;
            }
            let start = seq.next.fetch_add(1, Ordering::Relaxed);
            (0..MAX_SCAN.min(seq.order.len()))
                .map(|offset| seq.order[(start + offset) % seq.order.len()] as usize)
                .find(|&index| pick.is_allowed(index))
        });
        found.or_else(|| draw_among_allowed(pick))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::cluster::endpoint::testing::members;

    #[test]
    fn smooth_sequence_for_5_1_1() {
        let m = members(&[(1, 5), (2, 1), (3, 1)]);
        let names = ['a', 'b', 'c'];
        let picked: Vec<char> = (0..14)
            .map(|_| {
                names[WeightedRoundRobin
                    .pick(&Pick::all(&m, None))
                    .expect("picks")]
            })
            .collect();
        let period = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
        assert_eq!(picked[..7], period);
        assert_eq!(picked[7..], period);
    }

    #[test]
    fn shares_follow_weights_and_gcd_shortens_the_period() {
        assert_eq!(smooth_sequence(&[100, 100, 100]), [0, 1, 2]);
        assert_eq!(smooth_sequence(&[0, 0]), [0, 1]);
        assert!(!smooth_sequence(&[0, 3]).contains(&0));
        let m = members(&[(1, 1), (2, 2), (3, 3)]);
        let counts = distribution(&WeightedRoundRobin, &m, 600);
        assert_eq!(counts, [100, 200, 300]);
    }

    #[test]
    fn huge_weights_are_scaled_to_a_bounded_period() {
        let order = smooth_sequence(&[u32::MAX as u64, 1, u32::MAX as u64 - 2]);
        assert!(order.len() as u64 <= MAX_PERIOD + 3);
        assert!(order.contains(&1));
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(&WeightedRoundRobin, &members(&[(1, 5), (2, 1), (3, 1)]));
    }
}
