//! `random`: uniformly at random.

use rand::Rng;

use super::{LoadBalancer, Pick};

/// Picks an allowed endpoint uniformly at random.
#[derive(Debug, Clone, Copy, Default)]
pub struct Random;

impl LoadBalancer for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn pick(&self, pick: &Pick<'_>) -> Option<usize> {
        let len = pick.endpoints().len();
        if len == 0 {
            return None;
        }
        let mut rng = rand::thread_rng();
        let first = rng.gen_range(0..len);
        if pick.is_allowed(first) {
            return Some(first);
        }
        match pick.allowed_count() {
            0 => None,
            allowed => pick.nth_allowed(rng.gen_range(0..allowed)),
        }
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
        assert_shares(&distribution(&Random, &m, 3000), &[1.0 / 3.0; 3], 0.05);
    }

    #[test]
    fn respects_exclusions() {
        assert_respects_exclusions(&Random, &members(&[(1, 100), (2, 100), (3, 100)]));
    }
}
