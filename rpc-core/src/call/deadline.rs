//! [`Deadline`]: the one place where a call's time budget changes form.
//!
//! A caller gives a budget (`Duration`), the client keeps the instant it runs out, the wire
//! carries the milliseconds still left (`u32`, 0 = none), and the server turns those back
//! into an instant. Every conversion saturates: a budget too large to add to the clock, such
//! as `Duration::MAX`, means no deadline rather than a panic.

use std::time::{Duration, Instant};

/// When a call stops waiting, or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Deadline {
    /// `None`: no deadline.
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline: wait forever.
    pub const NONE: Deadline = Deadline { at: None };

    /// The deadline `budget` from now; `None`, or a budget past the clock's range, is none.
    pub fn after(budget: Option<Duration>) -> Deadline {
        Deadline::after_since(budget, Instant::now())
    }

    /// The deadline `budget` from `now`, for a caller that has read the clock already.
    pub fn after_since(budget: Option<Duration>, now: Instant) -> Deadline {
        Deadline {
            at: budget.and_then(|budget| now.checked_add(budget)),
        }
    }

    /// The deadline at `instant`.
    pub fn at(instant: Instant) -> Deadline {
        Deadline { at: Some(instant) }
    }

    /// The deadline a request's wire field gives: `ms` milliseconds from now, 0 meaning none.
    pub fn from_wire_ms(ms: u32) -> Deadline {
        Deadline::from_wire_ms_since(ms, Instant::now())
    }

    /// The deadline a request's wire field gives, counted from when the request arrived: a
    /// server reads the clock once per batch of frames, not once per call.
    pub fn from_wire_ms_since(ms: u32, arrived: Instant) -> Deadline {
        match ms {
            0 => Deadline::NONE,
            ms => Deadline {
                at: arrived.checked_add(Duration::from_millis(u64::from(ms))),
            },
        }
    }

    /// The instant it runs out, if any.
    pub fn instant(self) -> Option<Instant> {
        self.at
    }

    /// Whether there is a deadline at all.
    pub fn is_set(self) -> bool {
        self.at.is_some()
    }

    /// The time still left (zero once passed), or `None` for no deadline.
    pub fn remaining(self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed.
    pub fn is_expired(self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// Whether waiting `delay` from now would reach the deadline.
    pub fn is_within(self, delay: Duration) -> bool {
        match (self.at, Instant::now().checked_add(delay)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(at), Some(then)) => then >= at,
        }
    }

    /// The earlier of this deadline and `limit` from now (a per-attempt bound).
    pub fn limited_to(self, limit: Duration) -> Deadline {
        let bound = Deadline::after(Some(limit));
        match (self.at, bound.at) {
            (Some(a), Some(b)) => Deadline::at(a.min(b)),
            (Some(a), None) => Deadline::at(a),
            (None, _) => bound,
        }
    }

    /// The wire form: milliseconds still left, 0 for none. A spent budget is sent as 1 ms,
    /// since 0 would mean "no deadline"; a longer one than fits is sent as `u32::MAX`.
    pub fn to_wire_ms(self) -> u32 {
        match self.remaining() {
            None => 0,
            Some(left) => u32::try_from(left.as_millis()).unwrap_or(u32::MAX).max(1),
        }
    }

    /// Runs `work` until the deadline; `None` if the deadline passed first.
    ///
    /// Not an `async fn`: that would keep `work` in its state beside the timeout holding
    /// it, and a call's future is moved through here by value on every call.
    pub fn run<F: std::future::Future>(
        self,
        work: F,
    ) -> impl std::future::Future<Output = Option<F::Output>> {
        use futures::future::{Either, FutureExt};
        match self.at {
            None => Either::Left(work.map(Some)),
            Some(at) => Either::Right(tokio::time::timeout_at(at.into(), work).map(Result::ok)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call's future passes through `run` by value on every call: `run` must hold the work
    /// once (beside its timer), not a second copy as an `async fn` parameter would.
    #[tokio::test]
    async fn running_under_a_deadline_keeps_one_copy_of_the_work() {
        let work = async {
            let buffer = [7u8; 4096];
            std::future::pending::<()>().await;
            buffer[0]
        };
        let work_size = std::mem::size_of_val(&work);
        let bounded = Deadline::after(Some(Duration::from_secs(1))).run(work);
        assert!(
            std::mem::size_of_val(&bounded) < work_size + 1024,
            "run's future is {} bytes for {work_size} bytes of work",
            std::mem::size_of_val(&bounded)
        );
    }

    #[test]
    fn huge_budgets_mean_no_deadline() {
        assert_eq!(Deadline::after(Some(Duration::MAX)), Deadline::NONE);
        assert_eq!(Deadline::after(None), Deadline::NONE);
        assert_eq!(Deadline::after(Some(Duration::MAX)).to_wire_ms(), 0);
        assert!(!Deadline::NONE.is_within(Duration::MAX));
    }

    #[test]
    fn wire_form_round_trips_and_never_sends_zero_for_a_spent_budget() {
        assert_eq!(Deadline::from_wire_ms(0), Deadline::NONE);
        let d = Deadline::from_wire_ms(5_000);
        let left = d.to_wire_ms();
        assert!((4_900..=5_000).contains(&left), "{left}");
        assert_eq!(Deadline::at(Instant::now()).to_wire_ms(), 1);
        let far = Deadline::after(Some(Duration::from_secs(100 * 86_400)));
        assert_eq!(far.to_wire_ms(), u32::MAX);
    }

    #[test]
    fn limits_take_the_earlier_bound() {
        let long = Deadline::after(Some(Duration::from_secs(10)));
        let limited = long.limited_to(Duration::from_millis(100));
        assert!(limited.remaining().unwrap() <= Duration::from_millis(100));
        assert!(Deadline::NONE.limited_to(Duration::from_secs(1)).is_set());
        assert_eq!(
            Deadline::NONE.limited_to(Duration::MAX),
            Deadline::NONE,
            "an unbounded limit adds no deadline"
        );
    }

    #[tokio::test]
    async fn run_stops_at_the_deadline() {
        let d = Deadline::after(Some(Duration::from_millis(10)));
        assert_eq!(d.run(std::future::pending::<()>()).await, None);
        assert_eq!(Deadline::NONE.run(async { 7 }).await, Some(7));
    }
}
