//! The server's metrics, through the `metrics` facade (the application installs the
//! recorder; with none installed they cost a lookup and go nowhere). Names follow the
//! OpenTelemetry RPC semantic conventions in their Prometheus form; durations are seconds.
//!
//! Labels are bounded: `rpc_service` is a service this server serves (anything else is
//! [`UNKNOWN`]), `rpc_method` a method of it that exists (an unknown one is [`UNKNOWN`]),
//! `rpc_response_status_code` the numeric status. No request data becomes a label.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use ::metrics::{Gauge, Histogram};

use crate::metric_handles::{status_label, with_handle, HandleCache};
use crate::protocol::Status;
use crate::Service;

/// Call duration, seconds, by `rpc_service`, `rpc_method`, `rpc_response_status_code`.
pub const CALL_DURATION: &str = "rpc_server_call_duration_seconds";
/// Calls whose handler is still running.
pub const IN_FLIGHT: &str = "rpc_server_in_flight";
/// Connections being served.
pub const CONNECTIONS: &str = "rpc_server_connections";
/// The status label of a call that ended without an answer: the caller cancelled it, its
/// connection closed, or the drain grace ran out.
pub const CANCELLED: &str = "cancelled";
/// Calls or connections refused before a handler ran, by `reason`.
pub const REJECTED: &str = "rpc_server_rejected_total";

/// The label value for a service or method that the server does not have.
pub const UNKNOWN: &str = "_unknown";

/// Why a call (or a connection) was refused, the `reason` label of [`REJECTED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// The connection's in-flight limit was reached.
    Overloaded,
    /// The connection limit was reached and no idle connection could make room.
    Connections,
    /// A frame over the frame limit (the connection closes).
    TooLarge,
    /// A reply over the frame limit (the handler ran; the reply was not sent).
    ResponseTooLarge,
    /// The caller's credentials were missing, wrong or not allowed (status 9 or 10).
    Auth,
}

impl Rejected {
    fn label(self) -> &'static str {
        match self {
            Rejected::Overloaded => "overloaded",
            Rejected::Connections => "connections",
            Rejected::TooLarge => "too_large",
            Rejected::ResponseTooLarge => "response_too_large",
            Rejected::Auth => "auth",
        }
    }

    /// The reason a layer's refusal with `status` counts under, if it is a refusal at all.
    pub(crate) fn by_layer(status: Status) -> Option<Rejected> {
        match status {
            Status::Unauthenticated | Status::PermissionDenied => Some(Rejected::Auth),
            Status::Overloaded => Some(Rejected::Overloaded),
            _ => None,
        }
    }
}

/// Times one call from its arrival to its answer, with labels taken from the service's
/// descriptor (static strings: bounded, and no allocation per call).
/// A meter dropped before its call was answered records the call as [`CANCELLED`].
pub(crate) struct CallMeter {
    service: &'static str,
    method: &'static str,
    started: Instant,
    answered: Cell<bool>,
}

impl CallMeter {
    /// Starts timing a call of `method` on `service` (`None`: not served here) that arrived
    /// at `arrived`.
    pub(crate) fn start(
        service: Option<&dyn Service>,
        method: &str,
        arrived: Instant,
    ) -> CallMeter {
        let descriptor = service.map(|s| s.descriptor());
        CallMeter {
            service: descriptor.map_or(UNKNOWN, |d| d.key),
            method: descriptor
                .and_then(|d| d.method(method))
                .map_or(UNKNOWN, |m| m.name),
            started: arrived,
            answered: Cell::new(false),
        }
    }

    /// Records the call as answered with `status`.
    pub(crate) fn answered(&self, status: Status) {
        self.answered.set(true);
        self.record(status_label(status));
    }

    fn record(&self, status: &'static str) {
        thread_local! {
            static HANDLES: RefCell<HandleCache<[&'static str; 3], Histogram>> =
                RefCell::new(HandleCache::new());
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let register = || {
            ::metrics::histogram!(
                CALL_DURATION,
                "rpc_service" => self.service,
                "rpc_method" => self.method,
                "rpc_response_status_code" => status,
            )
        };
        let labels = [self.service, self.method, status];
        with_handle(&HANDLES, labels, register, |duration| {
            duration.record(elapsed)
        });
    }
}

impl Drop for CallMeter {
    fn drop(&mut self) {
        if !self.answered.get() {
            self.record(CANCELLED);
        }
    }
}

/// Records a refusal.
pub(crate) fn rejected(reason: Rejected) {
    ::metrics::counter!(REJECTED, "reason" => reason.label()).increment(1);
}

/// Counts a handler running until the guard drops.
pub(crate) struct InFlightGauge(());

impl InFlightGauge {
    pub(crate) fn start() -> InFlightGauge {
        in_flight(1.0);
        InFlightGauge(())
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        in_flight(-1.0);
    }
}

/// Moves the in-flight gauge by `delta`, through this thread's handle.
fn in_flight(delta: f64) {
    thread_local! {
        static HANDLES: RefCell<HandleCache<(), Gauge>> = RefCell::new(HandleCache::new());
    }
    let register = || ::metrics::gauge!(IN_FLIGHT);
    with_handle(&HANDLES, (), register, |gauge| gauge.increment(delta));
}

/// Counts a served connection until the guard drops.
pub(crate) struct ConnectionGauge(());

impl ConnectionGauge {
    pub(crate) fn start() -> ConnectionGauge {
        ::metrics::gauge!(CONNECTIONS).increment(1.0);
        ConnectionGauge(())
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        ::metrics::gauge!(CONNECTIONS).decrement(1.0);
    }
}
