//! One attempt of a call on one endpoint, with its statistics kept even if the attempt's
//! future is dropped (the call's deadline fired, or the caller gave up).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::balance::LoadBalancer;
use super::eject::Ejector;
use super::endpoint::Endpoint;
use super::outcome::Outcome;
use crate::call::{Call, Deadline};
use crate::transport::Pool;
use crate::RpcError;

/// Sends `call` to `endpoint`, bounded by `limit` if given (and always by the call's
/// deadline), and records the outcome. Latency is measured from when the connection is in
/// hand, so opening one does not count against the provider.
pub(crate) async fn attempt(
    pool: &Pool,
    endpoint: &Endpoint,
    call: &Call,
    limit: Option<Duration>,
    ejector: &Ejector,
    balancer: &dyn LoadBalancer,
) -> Result<Bytes, RpcError> {
    let mut tracker = Tracker::start(endpoint, call.deadline, ejector, balancer);
    let result = match limit {
        None => exchange(pool, endpoint.addr(), call, &mut tracker).await,
        Some(limit) => {
            let mut bounded = call.clone();
            bounded.deadline = call.deadline.limited_to(limit);
            let budget = bounded.deadline.remaining().unwrap_or(limit);
            let exchanged = exchange(pool, endpoint.addr(), &bounded, &mut tracker);
            match bounded.deadline.run(exchanged).await {
                Some(result) => result,
                None => Err(RpcError::DeadlineExceeded { deadline: budget }),
            }
        }
    };
    tracker.finish(Outcome::of(&result));
    result
}

async fn exchange(
    pool: &Pool,
    addr: SocketAddr,
    call: &Call,
    tracker: &mut Tracker<'_>,
) -> Result<Bytes, RpcError> {
    let connection = pool.get(addr).await?;
    tracker.started = Instant::now();
    connection.send(call).await
}

/// Counts the attempt in flight; on finish (or drop) updates latency, ejection and the
/// balancer.
struct Tracker<'a> {
    endpoint: &'a Endpoint,
    started: Instant,
    deadline: Deadline,
    ejector: &'a Ejector,
    balancer: &'a dyn LoadBalancer,
    done: bool,
}

impl<'a> Tracker<'a> {
    fn start(
        endpoint: &'a Endpoint,
        deadline: Deadline,
        ejector: &'a Ejector,
        balancer: &'a dyn LoadBalancer,
    ) -> Tracker<'a> {
        let state = endpoint.state();
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        state.calls.fetch_add(1, Ordering::Relaxed);
        Tracker {
            endpoint,
            started: Instant::now(),
            deadline,
            ejector,
            balancer,
            done: false,
        }
    }

    fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.record(outcome);
    }

    fn record(&self, outcome: Outcome) {
        let latency = self.started.elapsed();
        let state = self.endpoint.state();
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
        if outcome.answered() {
            state.observe_latency(latency);
        }
        self.ejector.record(self.endpoint, outcome);
        self.balancer.on_result(self.endpoint, outcome, latency);
    }
}

impl Drop for Tracker<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped mid-flight: a timeout if the call's deadline has passed, otherwise the
        // caller cancelled, which says nothing about the provider.
        let timed_out = self.deadline.is_expired();
        if timed_out {
            self.record(Outcome::Timeout);
        } else {
            self.endpoint
                .state()
                .in_flight
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}
