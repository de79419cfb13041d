//! Exponential backoff with jitter, shared by fail-over retries, re-watches and ejection.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `max`, each shortened by a random share of up to
/// `jitter` so that many clients do not retry in lock-step.
///
/// Retry `n` (0 for the first) waits `min(max, base * 2^n) * (1 - r)` with `r` uniform in
/// `[0, jitter)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay, before jitter.
    pub base: Duration,
    /// The largest delay, before jitter.
    pub max: Duration,
    /// The largest share of a delay that jitter may remove, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Backoff {
    /// Doubling delays from `base` to `max` with jitter 0.5.
    pub const fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            jitter: 0.5,
        }
    }

    /// The same delays with another jitter share (clamped to `0.0..=1.0`).
    pub fn with_jitter(mut self, jitter: f64) -> Backoff {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay before jitter for retry `n` (0 for the first): `base * 2^n`, at most `max`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32 << n.min(31);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay for retry `n` (0 for the first).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.ceiling(n);
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        if jitter == 0.0 || ceiling.is_zero() {
            return ceiling;
        }
        let cut = rand::thread_rng().gen_range(0.0..jitter);
        ceiling.mul_f64(1.0 - cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        assert_eq!(b.ceiling(0), Duration::from_millis(10));
        assert_eq!(b.ceiling(1), Duration::from_millis(20));
        assert_eq!(b.ceiling(3), Duration::from_millis(80));
        assert_eq!(b.ceiling(4), Duration::from_millis(100));
        assert_eq!(b.ceiling(200), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).with_jitter(0.5);
        for n in 0..6 {
            for _ in 0..100 {
                let d = b.delay(n);
                assert!(d <= b.ceiling(n), "{d:?} over {:?}", b.ceiling(n));
                assert!(
                    d >= b.ceiling(n) / 2,
                    "{d:?} under half of {:?}",
                    b.ceiling(n)
                );
            }
        }
        let exact = b.with_jitter(0.0);
        assert_eq!(exact.delay(2), Duration::from_millis(400));
    }
}
