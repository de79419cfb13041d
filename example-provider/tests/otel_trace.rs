//! With the `opentelemetry` feature, a consumer -> relay -> greeter chain is one OpenTelemetry
//! trace: every span shares the trace id and each hop's span is the parent of the next.
//!
//! `cargo test -p example-provider --features opentelemetry --test otel_trace`

#[path = "../examples/otel_two_hop.rs"]
mod otel_two_hop;

use opentelemetry::trace::SpanId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_hop_chain_is_one_opentelemetry_trace_each_span_the_parent_of_the_next() {
    let spans = otel_two_hop::two_hop_spans()
        .await
        .unwrap_or_else(|e| panic!("two-hop chain: {e}"));
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    let root = spans
        .iter()
        .find(|s| s.name == "rpc.client" && s.parent_span_id == SpanId::INVALID)
        .unwrap_or_else(|| panic!("no root rpc.client span among {names:?}"));
    let trace = root.span_context.trace_id();

    // Walk the chain from the root: client -> server -> client -> server.
    let mut parent = root.span_context.span_id();
    for expected in ["rpc.server", "rpc.client", "rpc.server"] {
        let child = spans
            .iter()
            .find(|s| s.parent_span_id == parent)
            .unwrap_or_else(|| panic!("no child of {parent} (want {expected}) among {names:?}"));
        assert_eq!(child.name, expected, "the chain's order: {names:?}");
        assert_eq!(
            child.span_context.trace_id(),
            trace,
            "{expected} is in another trace"
        );
        parent = child.span_context.span_id();
    }
    assert!(
        spans
            .iter()
            .filter(|s| s.name.starts_with("rpc."))
            .all(|s| s.span_context.trace_id() == trace),
        "every rpc span shares the root's trace id"
    );
}
