//! Jittered exponential backoff for the background tasks that retry forever.

use std::time::Duration;

use rand::Rng;

/// The first delay after a failure.
const FIRST: Duration = Duration::from_millis(100);
/// The longest delay, whatever the heartbeat.
const CAP: Duration = Duration::from_millis(2_500);

/// Delays that double from 100 ms up to a cap, each drawn at random from its upper half so
/// that many clients recovering together do not retry in step.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// A backoff capped at 2.5 s, or at `heartbeat` if that is shorter, so that a recovery
    /// is noticed within about one heartbeat of the registry coming back.
    pub(crate) fn new(heartbeat: Duration) -> Backoff {
        let cap = CAP.min(heartbeat).max(FIRST);
        Backoff { next: FIRST, cap }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let current = self.next;
        self.next = (self.next * 2).min(self.cap);
        let low = current.as_secs_f64() / 2.0;
        Duration::from_secs_f64(rand::thread_rng().gen_range(low..=current.as_secs_f64()))
    }

    /// Starts over from the first delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= FIRST / 2 && delays[0] <= FIRST);
        assert!(delays.iter().all(|d| *d <= CAP));
        assert!(delays[9] >= CAP / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST);
        let mut short = Backoff::new(Duration::from_millis(600));
        assert!((0..10)
            .map(|_| short.next_delay())
            .all(|d| d <= Duration::from_millis(600)));
    }
}
