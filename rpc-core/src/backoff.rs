//! Exponential backoff with jitter: the one policy behind fail-over retries, re-watches,
//! ejection, and the registry backends' reconnects ([`Backoff`] is the policy, [`Retries`]
//! walks it for a loop that retries until it succeeds).

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

    /// A fresh walk over these delays, for a loop that retries until it succeeds.
    pub fn retries(self) -> Retries {
        Retries {
            policy: self,
            attempt: 0,
        }
    }
}

/// Successive delays of one [`Backoff`]: each call to [`Retries::next_delay`] moves one step
/// up, [`Retries::reset`] starts over after a success.
#[derive(Debug, Clone)]
pub struct Retries {
    policy: Backoff,
    attempt: u32,
}

impl Retries {
    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Sleeps for the next delay.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Starts over from the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
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

    #[test]
    fn retries_climb_and_reset() {
        let mut retries = Backoff::new(Duration::from_millis(10), Duration::from_millis(40))
            .with_jitter(0.0)
            .retries();
        let delays: Vec<u64> = (0..4)
            .map(|_| retries.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 40]);
        retries.reset();
        assert_eq!(retries.next_delay(), Duration::from_millis(10));
    }
}
