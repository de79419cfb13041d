//! Prints a two-hop trace as OpenTelemetry records it: this process calls `example.Relay`,
//! which calls `example.Greeter`. With the `opentelemetry` feature, `rpc-core`'s spans are
//! linked through `tracing-opentelemetry`, so the four spans (`rpc.client` here, `rpc.server`
//! and `rpc.client` in the relay, `rpc.server` in the greeter) form one trace, each the parent
//! of the next. An in-memory exporter stands in for an OTLP collector.
//!
//! `cargo run -p example-provider --features opentelemetry --example otel_two_hop`

use example_provider::{ExampleProvider, ExampleRelay, GreeterServer, RelayClient, RelayServer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rpc_core::{Client, Server};
use tracing_subscriber::layer::SubscriberExt;

/// Runs consumer -> relay -> greeter in this process with an OpenTelemetry layer installed
/// for the duration, and returns the finished spans in the order they ended.
pub async fn two_hop_spans() -> Result<Vec<SpanData>, Box<dyn std::error::Error>> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("otel_two_hop")));
    // Global: the servers' tasks run on every worker thread.
    let _installed = tracing::subscriber::set_global_default(subscriber);

    let greeter = Server::builder()
        .serve(GreeterServer::new(ExampleProvider::default()))
        .start()
        .await?;
    let downstream = Client::connect(&greeter.local_addr().to_string()).await?;
    let relay = Server::builder()
        .serve(RelayServer::new(ExampleRelay::new(downstream)))
        .start()
        .await?;
    let consumer = RelayClient::connect(&relay.local_addr().to_string()).await?;
    consumer.relay("trace".into()).await??;
    relay.shutdown().await?;
    greeter.shutdown().await?;

    provider.force_flush()?;
    Ok(exporter.get_finished_spans()?)
}

#[allow(dead_code)] // The test includes this file for `two_hop_spans` only.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for span in two_hop_spans().await? {
        println!(
            "{:<10} trace_id={} span_id={} parent={}",
            span.name,
            span.span_context.trace_id(),
            span.span_context.span_id(),
            span.parent_span_id,
        );
    }
    Ok(())
}
