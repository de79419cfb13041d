//! Provider processes against a real Redis: a killed provider expires from consumers' lists
//! within TTL + 1 s, and consumers keep calling known providers while Redis is down, then see
//! them again when it is back (empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use example_provider::CalculatorClient;
use rpc_core::registry::Registry;
use rpc_core::Client;
use tests::consumer::{calculator_key, greeter_key, listed, wait_listed, Load};
use tests::process::Provider;
use tests::redis::RedisServer;
use tests::wait::{addresses, wait_until, watch_until};

/// Key TTL of the registries under test.
const TTL: Duration = Duration::from_secs(2);

async fn registry(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// SIGKILLs a provider off the runtime's threads (killing waits for the process).
async fn kill(provider: Provider) {
    tokio::task::spawn_blocking(move || {
        let mut provider = provider;
        provider.kill();
    })
    .await
    .unwrap_or_else(|e| panic!("kill task: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_with_sigkill_disappears_within_ttl_plus_1s() {
    let server = RedisServer::start().await;
    let url = server.registry_url("ttl=2");
    let victim = Provider::start(&url, &[]);
    let consumer = registry(&url).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let address = victim.address();
    watch_until(
        &mut watch,
        Duration::from_secs(10),
        "the provider",
        |list| addresses(list).contains(&address),
    )
    .await
    .unwrap();
    let killed = Instant::now();
    kill(victim).await;
    watch_until(
        &mut watch,
        TTL + Duration::from_secs(1),
        "the killed provider to go",
        |list| !addresses(list).contains(&address),
    )
    .await
    .unwrap();
    println!(
        "killed provider gone from the watch after {:?}",
        killed.elapsed()
    );
    assert!(consumer.discover(&greeter_key()).await.unwrap().is_empty());
    consumer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_consumer_keeps_calling_known_providers_while_redis_is_down_and_they_return() {
    let mut server = RedisServer::start().await;
    let url = server.registry_url("ttl=2");
    let a = Provider::start(&url, &[]);
    let b = Provider::start(&url, &[]);
    let client = Client::discover(registry(&url).await);
    let both = [a.address(), b.address()];
    wait_listed(&client, &greeter_key(), &both, Duration::from_secs(10)).await;
    wait_listed(&client, &calculator_key(), &both, Duration::from_secs(10)).await;

    let load = Load::start(&client, 8);
    wait_until(Duration::from_secs(10), "calls to flow", || async {
        load.calls() > 100
    })
    .await
    .unwrap();
    server.stop().await;
    let before = load.calls();
    let entry = client
        .directory()
        .and_then(|d| d.cached(&greeter_key()))
        .expect("the greeter entry is cached");
    wait_until(
        Duration::from_secs(10),
        "the list to be reported stale",
        || async { entry.is_stale() },
    )
    .await
    .unwrap();
    // Longer than the TTL: the list is kept, the calls go on.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    let during = load.calls() - before;
    assert_eq!(entry.instances().len(), 2);
    let report = load.finish().await;
    assert!(during > 100, "only {during} calls while redis was down");
    report.assert_no_failures();

    // Redis comes back empty: the providers write themselves back, the consumer sees them.
    server.start_again().await;
    let raw = registry(&url).await;
    wait_until(
        Duration::from_secs(10),
        "both providers re-registered",
        || async {
            addresses(&raw.discover(&greeter_key()).await.unwrap_or_default())
                == addresses_of(&both)
        },
    )
    .await
    .unwrap();
    wait_listed(&client, &greeter_key(), &both, Duration::from_secs(10)).await;
    assert_eq!(listed(&client, &greeter_key()).await.len(), 2);
    let calc = CalculatorClient::new(client.clone());
    assert_eq!(calc.add(2, 2).await.unwrap(), 4);
    raw.shutdown().await.unwrap();
}

fn addresses_of(list: &[String]) -> Vec<String> {
    let mut out = list.to_vec();
    out.sort();
    out
}
