//! Addresses that answered "unknown service" or "unknown method" for a service key: a port
//! reused by another server, a hand-written node with the wrong port. They are skipped for
//! that service key (and only that one) for a while, then tried again in case a provider of
//! it came up there. The rest of the address's services are untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;

/// How long an address stays skipped for a service after it said it does not serve it.
const SKIP_FOR: Duration = Duration::from_secs(60);

/// Marks kept at most; beyond, new ones are dropped (the failed attempt still fails over).
const MAX_MARKS: usize = 4096;

/// `(service key, address)` pairs known not to serve, until when.
#[derive(Default)]
pub(crate) struct NotServing {
    marks: Mutex<HashMap<(ByteString, SocketAddr), Instant>>,
    /// The number of marks, read without the lock on every call.
    count: AtomicUsize,
}

impl NotServing {
    /// Notes that `addr` does not serve `service`; says whether it is newly noted.
    pub(crate) fn mark(&self, service: &ByteString, addr: SocketAddr) -> bool {
        let now = Instant::now();
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.retain(|_, until| *until > now);
        let fresh = !marks.contains_key(&(service.clone(), addr));
        if marks.len() < MAX_MARKS || !fresh {
            marks.insert((service.clone(), addr), now + SKIP_FOR);
        }
        self.count.store(marks.len(), Ordering::Relaxed);
        fresh
    }

    /// Adds to `out` the addresses currently skipped for `service`.
    pub(crate) fn skipped(&self, service: &ByteString, out: &mut Vec<SocketAddr>) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = Instant::now();
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(
            marks
                .iter()
                .filter(|((key, _), until)| key == service && **until > now)
                .map(|((_, addr), _)| *addr),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn marks_are_per_service_and_expire() {
        let marks = NotServing::default();
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        let greeter = ByteString::from_static("example.Greeter:1.0.0");
        let calc = ByteString::from_static("example.Calculator:1.0.0");
        assert!(marks.mark(&greeter, a));
        assert!(!marks.mark(&greeter, a));
        let mut out = Vec::new();
        marks.skipped(&greeter, &mut out);
        assert_eq!(out, [a]);
        out.clear();
        marks.skipped(&calc, &mut out);
        assert!(out.is_empty());
        tokio::time::advance(SKIP_FOR + Duration::from_secs(1)).await;
        marks.skipped(&greeter, &mut out);
        assert!(out.is_empty());
    }
}
