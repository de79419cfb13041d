//! One trace across three processes: this test (the consumer) calls `example.Relay` on
//! provider A, which calls `example.Greeter` on provider B, both found through a real etcd.
//! The consumer's `rpc.client` span, A's `rpc.server` and `rpc.client` spans and B's
//! `rpc.server` span all carry the same trace id: the consumer's from a capturing `tracing`
//! layer in this process, the providers' from their debug logs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_provider::RelayClient;
use rpc_core::Client;
use tests::consumer::wait_listed;
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::wait::wait_until;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

const WAIT: Duration = Duration::from_secs(20);

/// Collects the `trace_id` recorded on every `rpc.client` span of this process.
#[derive(Clone, Default)]
struct TraceIds(Arc<Mutex<Vec<String>>>);

struct TraceIdField<'a>(&'a TraceIds);

impl Visit for TraceIdField<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 .0.lock().unwrap().push(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S>
    for TraceIds
{
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "rpc.client" {
            attrs.record(&mut TraceIdField(self));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        if cx.span(id).is_some_and(|s| s.name() == "rpc.client") {
            values.record(&mut TraceIdField(self));
        }
    }
}

/// The trace ids on the lines of `log` that belong to span `span` and name `service`.
fn logged_trace_ids(log: &Path, span: &str, service: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let open = format!("{span}{{");
    text.lines()
        .filter_map(|line| {
            // Spans nest (A's client span is inside its server span): read `span`'s own
            // fields, up to its closing brace.
            let (_, fields) = line.split_once(&open)?;
            let (fields, _) = fields.split_once('}')?;
            if !fields.contains(service) {
                return None;
            }
            let (_, id) = fields.split_once("trace_id=")?;
            Some(id.chars().take_while(char::is_ascii_hexdigit).collect())
        })
        .collect()
}

async fn start_provider(url: &str, extra: &'static [&'static str], log: PathBuf) -> Provider {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        Provider::start_logging_to(&url, extra, "warn,rpc_core=debug", &log)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_relay_greeter_chain_shares_one_trace_id() {
    let trace_ids = TraceIds::default();
    let subscriber = tracing_subscriber::registry().with(trace_ids.clone().with_filter(
        tracing_subscriber::filter::filter_fn(|m| m.target().starts_with("rpc_core")),
    ));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=5");
    let logs = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let _b = start_provider(&url, &[], log_b.clone()).await;
    let a = start_provider(&url, &["--relay"], log_a.clone()).await;

    let client = Client::discover(rpc_registry::connect(&url).await.unwrap());
    let key = RelayClient::DESCRIPTOR.service_key();
    wait_listed(&client, &key, &[a.address()], WAIT).await;
    let relay = RelayClient::new(client);
    assert_eq!(
        relay.relay("bob".into()).await.unwrap(),
        Ok("Hello, bob!".into())
    );

    let consumer = trace_ids.0.lock().unwrap().clone();
    assert_eq!(consumer.len(), 1, "one rpc.client span here: {consumer:?}");
    let trace_id = consumer[0].clone();
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    let expected = vec![trace_id.clone()];
    let seen = |log: &Path, span: &str, service: &str| {
        let found = logged_trace_ids(log, span, service);
        (!found.is_empty()).then_some(found)
    };
    let chain = wait_until(WAIT, "both providers to log the call", || async {
        seen(&log_a, "rpc.server", "example.Relay").is_some()
            && seen(&log_a, "rpc.client", "example.Greeter").is_some()
            && seen(&log_b, "rpc.server", "example.Greeter").is_some()
    })
    .await;
    let show = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    if let Err(e) = chain {
        panic!("{e}\nA:\n{}\nB:\n{}", show(&log_a), show(&log_b));
    }
    for (log, span, service) in [
        (&log_a, "rpc.server", "example.Relay"),
        (&log_a, "rpc.client", "example.Greeter"),
        (&log_b, "rpc.server", "example.Greeter"),
    ] {
        let mut found = logged_trace_ids(log, span, service);
        found.dedup();
        assert_eq!(found, expected, "{span} of {service} in\n{}", show(log));
    }
}
