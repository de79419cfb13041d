//! The client's span for one call: `rpc.client` at debug level, so an `info` subscriber
//! prints nothing per call. It carries the service, the method, the attempt count and the
//! peer of the last attempt, the status, the latency and the trace id sent.

use std::time::Instant;

use tracing::field::Empty;
use tracing::Span;

use crate::RpcError;

/// A new span for a call of `method` on `service`.
pub(super) fn call_span(service: &str, method: &str) -> Span {
    tracing::debug_span!(
        "rpc.client",
        rpc.service = service,
        rpc.method = method,
        attempt = Empty,
        peer = Empty,
        status = Empty,
        latency_us = Empty,
        trace_id = Empty,
    )
}

/// Records how the call ended on its span, with one debug event a log subscriber prints.
pub(super) fn finish<T>(span: &Span, started: Instant, result: &Result<T, RpcError>) {
    if span.is_disabled() {
        return;
    }
    let latency_us = started.elapsed().as_micros() as u64;
    span.record("latency_us", latency_us);
    let _entered = span.enter();
    match result {
        Ok(_) => {
            span.record("status", 0u8);
            tracing::debug!(status = 0u8, latency_us, "rpc call finished");
        }
        Err(error) => {
            let status = error.status().map(|s| s.as_u8());
            if let Some(status) = status {
                span.record("status", status);
            }
            tracing::debug!(status, latency_us, %error, "rpc call failed");
        }
    }
}
