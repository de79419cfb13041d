//! A frozen provider (SIGSTOP: a long GC pause, a half-open connection) costs no call and
//! never stalls the consumer: its busy connections go silent, are declared dead within about
//! 2 s, and their idempotent calls fail over. Real provider processes, real etcd and
//! ZooKeeper, a consumer at concurrency 50 with the default fail-over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use example_provider::GreeterClient;
use rpc_core::Client;
use tests::consumer::{calculator_key, greeter_key, wait_listed, Load};
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::wait::wait_until;
use tests::zookeeper::ZookeeperServer;

/// How often the consumer's call count is sampled.
const SAMPLE: Duration = Duration::from_millis(250);

/// Samples a counter every [`SAMPLE`] until stopped; returns the longest time it stood still.
struct StallMeter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl StallMeter {
    fn start(load: &Load) -> StallMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let counter = load.counter();
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let mut interval = tokio::time::interval(SAMPLE);
                let mut last = counter();
                let mut still = Duration::ZERO;
                let mut longest = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    interval.tick().await;
                    let now = counter();
                    if now == last {
                        still += SAMPLE;
                        longest = longest.max(still);
                    } else {
                        still = Duration::ZERO;
                    }
                    last = now;
                }
                longest
            }
        });
        StallMeter { stop, task }
    }

    async fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(Duration::MAX)
    }
}

async fn frozen_provider_costs_nothing(url: &str) {
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(Provider::spawn_on("127.0.0.1:0", url, &[]).await);
    }
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    let client = Client::discover(rpc_registry::connect(url).await.unwrap());
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(15)).await;
    wait_listed(&client, &calculator_key(), &addrs, Duration::from_secs(15)).await;

    let load = Load::start(&client, 50);
    let meter = StallMeter::start(&load);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let frozen = &providers[1];
    frozen.freeze();
    wait_until(Duration::from_secs(5), "the provider to stop", || async {
        frozen.is_frozen()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let frozen_at = tokio::time::Instant::now();
    // Its lease / session expires and the registry drops it, calls in flight or not.
    let others: Vec<String> = addrs
        .iter()
        .filter(|a| **a != frozen.address())
        .cloned()
        .collect();
    wait_listed(&client, &greeter_key(), &others, Duration::from_secs(10)).await;
    tokio::time::sleep_until(frozen_at + Duration::from_secs(12)).await;
    frozen.thaw();

    // Back in rotation: listed again, and answering calls.
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(20)).await;
    let greeter = GreeterClient::new(client.clone());
    wait_until(
        Duration::from_secs(20),
        "the thawed provider to answer calls again",
        || async { greeter.whoami().await.ok() == Some(frozen.address()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let stalled = meter.finish().await;
    let report = load.finish().await;
    println!("longest stretch without a finished call: {stalled:?}");
    report.assert_no_failures();
    assert!(
        stalled <= Duration::from_secs(3),
        "the consumer made no call for {stalled:?} while a provider was frozen"
    );
    assert!(
        report
            .providers
            .get(&frozen.address())
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        report.providers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_frozen_for_12s_costs_no_call_and_never_stalls_the_consumer_on_etcd() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    frozen_provider_costs_nothing(&etcd.registry_url("ttl=3")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_frozen_past_its_zookeeper_session_costs_no_call_and_never_stalls() {
    tests::logging::init();
    let zookeeper = ZookeeperServer::start().await;
    frozen_provider_costs_nothing(&zookeeper.registry_url("ttl=3")).await;
}

/// The connection health check alone (a direct client: no registry, no fail-over, no attempt
/// budget): a call to a provider that froze mid-connection fails with `Unresponsive` in about
/// 2 s, long before its 10 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_frozen_provider_fails_as_unresponsive_within_about_2s() {
    let provider = Provider::spawn_on("127.0.0.1:0", "none", &[]).await;
    let client = Client::connect(&provider.address()).await.unwrap();
    let calc = example_provider::CalculatorClient::new(client);
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    provider.freeze();
    wait_until(Duration::from_secs(5), "the provider to stop", || async {
        provider.is_frozen()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let started = tokio::time::Instant::now();
    let err = calc.add(2, 2).await.unwrap_err();
    let took = started.elapsed();
    provider.thaw();
    println!("frozen provider detected after {took:?}: {err}");
    assert!(
        matches!(err, rpc_core::RpcError::Unresponsive { .. }),
        "expected Unresponsive, got {err}"
    );
    assert!(err.is_retryable(true) && !err.is_retryable(false), "{err}");
    assert!(took <= Duration::from_millis(2500), "took {took:?}");
}
