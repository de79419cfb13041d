//! The `opentelemetry` feature: links the `rpc.server` span to the caller's span (from the
//! incoming `traceparent`) and takes an outgoing call's `traceparent` from its `rpc.client`
//! span's OpenTelemetry context, so a `tracing-opentelemetry` layer exports one trace across
//! processes. Without that layer installed, spans have no valid context and the crate's own
//! trace ids are used.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TraceParent;

/// Makes `span` the child of the caller's remote span `parent`.
pub(crate) fn link_to_caller(span: &Span, parent: TraceParent) {
    let remote = SpanContext::new(
        TraceId::from(parent.trace_id),
        SpanId::from(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    // Fails only when no OpenTelemetry layer records this span: nothing to link then.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The `traceparent` naming `span` as OpenTelemetry sees it, if it has a valid context.
pub(crate) fn traceparent_of(span: &Span) -> Option<TraceParent> {
    let context = span.context();
    let otel = context.span();
    let span_context = otel.span_context();
    span_context.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(span_context.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(span_context.span_id().to_bytes()),
        flags: span_context.trace_flags().to_u8(),
    })
}
