//! One attempt of a call on one endpoint, with its statistics kept even if the attempt's
//! future is dropped (the call's deadline fired, or the caller gave up).
//!
//! Only what says something about the provider is recorded: a timeout is the provider's
//! fault only when the attempt's own budget ran out, not the caller's shorter deadline; a
//! request that could not even be sent is the caller's; a dropped attempt is the caller's.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::balance::LoadBalancer;
use super::eject::Ejector;
use super::endpoint::{Endpoint, Members};
use super::outcome::Outcome;
use crate::call::Call;
use crate::transport::Pool;
use crate::{RpcError, Status};

/// What one attempt runs with, besides the call.
pub(crate) struct AttemptContext<'a> {
    pub pool: &'a Pool,
    pub ejector: &'a Ejector,
    pub balancer: &'a dyn LoadBalancer,
    /// The snapshot the endpoint was picked from (the ejection cap counts over it).
    pub members: &'a Members,
}

/// Sends `call` to `endpoint`, bounded by `limit` if given (and always by the call's
/// deadline), and records the outcome. Latency is measured from when the connection is in
/// hand, so opening one does not count against the provider.
pub(crate) async fn attempt(
    cx: &AttemptContext<'_>,
    endpoint: &Endpoint,
    call: &Call,
    limit: Option<Duration>,
) -> Result<Bytes, RpcError> {
    let started = Instant::now();
    let mut tracker = Tracker::start(endpoint, cx);
    // Whether the attempt's own budget ends before the caller's deadline: only then is a
    // timeout the provider's fault.
    let mut own_budget = false;
    let result = match limit {
        None => exchange(cx, endpoint, call, &mut tracker).await,
        Some(limit) => {
            let mut bounded = call.clone();
            bounded.deadline = call.deadline.limited_to(limit);
            own_budget = bounded.deadline != call.deadline;
            bounded.budget = bounded.deadline.remaining().unwrap_or(limit);
            let exchanged = exchange(cx, endpoint, &bounded, &mut tracker);
            bounded.within_deadline(exchanged).await
        }
    };
    super::metrics::attempt_finished(call, endpoint.addr(), &result, started.elapsed());
    match &result {
        Err(error) if error.is_local() => tracker.forget(),
        Err(_) if Outcome::of(&result) == Outcome::Timeout && !own_budget => {
            // The caller's deadline, not the provider, ended the attempt.
            tracker.forget()
        }
        _ => {
            let application_error = matches!(
                &result,
                Err(RpcError::Status {
                    status: Status::ApplicationError,
                    ..
                })
            );
            tracker.finish(Outcome::of(&result), application_error)
        }
    }
    result
}

async fn exchange(
    cx: &AttemptContext<'_>,
    endpoint: &Endpoint,
    call: &Call,
    tracker: &mut Tracker<'_>,
) -> Result<Bytes, RpcError> {
    let uses_tls = cx
        .members
        .instance(endpoint)
        .is_some_and(|instance| instance.uses_tls());
    let connection = cx.pool.get_via(endpoint.addr(), uses_tls).await?;
    tracker.started = Instant::now();
    connection.send(call).await
}

/// Counts the attempt in flight; on finish updates latency, ejection and the balancer.
struct Tracker<'a> {
    endpoint: &'a Endpoint,
    started: Instant,
    cx: &'a AttemptContext<'a>,
    done: bool,
}

impl<'a> Tracker<'a> {
    fn start(endpoint: &'a Endpoint, cx: &'a AttemptContext<'a>) -> Tracker<'a> {
        endpoint.state().begin_attempt();
        Tracker {
            endpoint,
            started: Instant::now(),
            cx,
            done: false,
        }
    }

    /// Records how the attempt ended. An application error is an answer like a value: the
    /// provider is healthy, so it costs nothing in the balancer.
    fn finish(mut self, outcome: Outcome, application_error: bool) {
        self.done = true;
        let latency = self.started.elapsed();
        self.endpoint
            .state()
            .finish_attempt(outcome, application_error, latency);
        self.cx
            .ejector
            .record(self.endpoint, outcome, self.cx.members);
        self.cx.balancer.on_result(self.endpoint, outcome, latency);
    }

    /// Ends the attempt without recording anything about the provider.
    fn forget(mut self) {
        self.done = true;
        self.endpoint.state().end_attempt(false);
    }
}

impl Drop for Tracker<'_> {
    /// Dropped mid-flight: the caller's deadline fired or the caller gave up, neither of
    /// which says anything about the provider.
    fn drop(&mut self) {
        if !self.done {
            self.endpoint.state().end_attempt(false);
        }
    }
}
