//! The server's call metrics, read back through a Prometheus text parser: after calls with
//! known outcomes, `rpc_server_call_duration_seconds` holds exactly those counts per label
//! set; the registry and watch metrics follow a real etcd going away and coming back. The
//! recorder is process-global: the tests share it, and read only the series they made.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use example_provider::GreeterClient;
use metrics_exporter_prometheus::PrometheusHandle;
use tests::etcd::EtcdServer;
use tests::servers::example_server;
use tests::wait::wait_until;

use rpc_core::{Client, Server, Status};
use tests::raw::{encode, read_frame, request};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[rpc_core::service(name = "test.Outcomes", version = "1.0.0")]
trait Outcomes {
    async fn ok(&self) -> u32;
    async fn fail(&self) -> u32;
    async fn slow(&self, ms: u64);
}

#[derive(Clone)]
struct Impl;

impl Outcomes for Impl {
    async fn ok(&self) -> u32 {
        7
    }

    async fn fail(&self) -> u32 {
        panic!("{DELIBERATE_PANIC}")
    }

    async fn slow(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

const KEY: &str = "test.Outcomes:1.0.0";

/// What `fail` panics with.
const DELIBERATE_PANIC: &str = "an application error, on purpose";

const DURATION_COUNT: &str = "rpc_server_call_duration_seconds_count";
const CLIENT_DURATION_COUNT: &str = "rpc_client_call_duration_seconds_count";

/// `(service, method, status)` -> count, for every series of the `metric` histogram count
/// of `service`.
fn call_counts(text: &str, metric: &str, service: &str) -> BTreeMap<(String, String, String), f64> {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .unwrap_or_else(|e| panic!("the metrics do not parse: {e}\n{text}"));
    scrape
        .samples
        .into_iter()
        .filter(|sample| {
            sample.metric == metric && sample.labels.get("rpc_service") == Some(service)
        })
        .map(|sample| {
            let label = |name: &str| sample.labels.get(name).unwrap_or_default().to_string();
            let value = match sample.value {
                prometheus_parse::Value::Untyped(v) | prometheus_parse::Value::Counter(v) => v,
                other => panic!("{metric} is {other:?}"),
            };
            (
                (
                    label("rpc_service"),
                    label("rpc_method"),
                    label("rpc_response_status_code"),
                ),
                value,
            )
        })
        .collect()
}

fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        rpc_core::admin::install_prometheus()
            .unwrap_or_else(|e| panic!("cannot install the recorder: {e}"))
    })
}

/// The value of the sample of `metric` whose labels include `labels`, if there is one.
fn value(metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = recorder().render();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("the metrics do not parse: {e}"));
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

async fn wait_value(metric: &str, labels: &[(&str, &str)], ok: impl Fn(f64) -> bool) {
    let what = format!("{metric}{labels:?}");
    wait_until(Duration::from_secs(20), &what, || async {
        value(metric, labels).is_some_and(&ok)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_metrics_follow_the_lease_and_a_watch_resync() {
    recorder();
    let mut etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let registry = rpc_registry::connect(&url).await.unwrap();
    // The example Greeter, so that the exact counts of test.Outcomes are left alone.
    let server = example_server(Server::builder().registry(Arc::clone(&registry))).await;
    let consumer = Client::discover(rpc_registry::connect(&url).await.unwrap());
    let client = GreeterClient::new(consumer);
    assert_eq!(client.hello("a".into()).await.unwrap(), "Hello, a!");
    let etcd_label = [("backend", "etcd")];
    wait_value("rpc_registry_connected", &etcd_label, |v| v == 1.0).await;
    wait_value("rpc_registry_lease_renewals_total", &etcd_label, |v| {
        v >= 1.0
    })
    .await;

    let service = [("rpc_service", tests::raw::GREETER)];
    let resyncs_before = value("rpc_client_watch_resyncs_total", &service).unwrap_or(0.0);
    etcd.stop();
    wait_value("rpc_client_watch_disconnects_total", &service, |v| v >= 1.0).await;
    wait_value("rpc_registry_connected", &etcd_label, |v| v == 0.0).await;
    etcd.start_again().await;
    wait_value("rpc_client_watch_resyncs_total", &service, |v| {
        v > resyncs_before
    })
    .await;
    wait_value("rpc_registry_connected", &etcd_label, |v| v == 1.0).await;
    assert_eq!(client.hello("b".into()).await.unwrap(), "Hello, b!");
    server.shutdown().await.unwrap();
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_hold_exactly_the_calls_made_per_outcome() {
    tests::panics::silence_panics_saying(DELIBERATE_PANIC);
    let handle = recorder();
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .serve(OutcomesServer::new(Impl))
        .start()
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let addr = server.local_addr();
    let client = OutcomesClient::new(
        Client::connect(&addr.to_string())
            .await
            .unwrap_or_else(|e| panic!("connect: {e}")),
    );
    for _ in 0..5 {
        assert_eq!(client.ok().await.unwrap(), 7);
    }
    for _ in 0..3 {
        let error = client.fail().await.unwrap_err();
        assert_eq!(error.status(), Some(Status::ApplicationError), "{error}");
    }
    // Deadlines and unknown methods on a raw connection, so that the server, not the
    // client, decides the outcome.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let calls = [("slow", 50, Status::DeadlineExceeded); 2]
        .into_iter()
        .chain([("no_such_method", 0, Status::UnknownMethod); 4]);
    for (id, (method, deadline_ms, expected)) in (1..).zip(calls) {
        let frame = match method {
            "slow" => request(id, KEY, method, deadline_ms, &(10_000u64,)),
            _ => request(id, KEY, method, deadline_ms, &()),
        };
        raw.write_all(&encode(&frame)).await.unwrap();
        let reply = read_frame(&mut raw, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the server closed the connection on {method}"));
        assert_eq!(reply.status, expected, "{method}");
    }

    let text = handle.render();
    let counts = call_counts(&text, DURATION_COUNT, KEY);
    let series = |method: &str, status: &str| (KEY.into(), method.into(), status.into());
    let expected = BTreeMap::from([
        (series("ok", "0"), 5.0),
        (series("fail", "1"), 3.0),
        (series("slow", "5"), 2.0),
        (series("_unknown", "3"), 4.0),
    ]);
    assert_eq!(counts, expected);
    // The client saw the calls it made (the raw ones are not its own).
    let client_expected = BTreeMap::from([(series("ok", "0"), 5.0), (series("fail", "1"), 3.0)]);
    assert_eq!(
        call_counts(&text, CLIENT_DURATION_COUNT, KEY),
        client_expected
    );
    assert!(
        text.contains(&format!("server_address=\"{addr}\"")),
        "no server_address label: {text}"
    );
    server.shutdown().await.unwrap();
}

/// Calls through a server layer are timed with the status they got, and a layer's refusal
/// with status 9 counts as an `auth` rejection.
#[tokio::test]
async fn calls_through_a_layer_are_timed_and_its_refusals_count_as_auth_rejections() {
    const LAYERED: &str = "test.Layered:1.0.0";
    #[rpc_core::service(name = "test.Layered", version = "1.0.0")]
    trait Layered {
        async fn ok(&self) -> u32;
    }
    #[derive(Clone)]
    struct LayeredImpl;
    impl Layered for LayeredImpl {
        async fn ok(&self) -> u32 {
            7
        }
    }

    let handle = recorder();
    let auth_before = value("rpc_server_rejected_total", &[("reason", "auth")]).unwrap_or(0.0);
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .layer(example_provider::middleware::RequireMetadataLayer::new(
            "authorization",
        ))
        .serve(LayeredServer::new(LayeredImpl))
        .start()
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let client = Client::connect(&server.local_addr().to_string())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let stub = LayeredClient::new(client);
    let with_token = rpc_core::CallOptions::new().with_metadata("authorization", "Bearer t");
    for _ in 0..4 {
        assert_eq!(stub.call_with(&with_token).ok().await.unwrap(), 7);
    }
    for _ in 0..3 {
        let error = stub.ok().await.unwrap_err();
        assert_eq!(error.status(), Some(Status::Unauthenticated), "{error}");
    }

    let counts = call_counts(&handle.render(), DURATION_COUNT, LAYERED);
    let series = |status: &str| (LAYERED.into(), "ok".into(), status.into());
    let expected = BTreeMap::from([(series("0"), 4.0), (series("9"), 3.0)]);
    assert_eq!(counts, expected, "layered calls by method and status");
    let auth_after = value("rpc_server_rejected_total", &[("reason", "auth")]).unwrap_or(0.0);
    assert_eq!(auth_after - auth_before, 3.0, "auth rejections");
    server.shutdown().await.unwrap();
}
