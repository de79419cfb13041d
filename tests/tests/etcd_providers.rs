//! Provider processes against a real etcd: a killed provider expires from consumers' lists,
//! and consumers keep calling known providers while etcd is down.

use std::time::{Duration, Instant};

use example_provider::CalculatorClient;
use rpc_core::Client;
use tests::consumer::{calculator_key, greeter_key, listed, wait_listed, Load};
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::wait::wait_until;

#[tokio::test]
async fn a_provider_killed_with_sigkill_disappears_within_ttl_plus_2s() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let mut victim = Provider::start(&url, &[]);
    let survivor = Provider::start(&url, &[]);
    let client = Client::discover(rpc_registry::connect(&url).await.unwrap());
    let both = [victim.address(), survivor.address()];
    wait_listed(&client, &greeter_key(), &both, Duration::from_secs(10)).await;
    wait_listed(&client, &calculator_key(), &both, Duration::from_secs(10)).await;

    let killed = Instant::now();
    victim.kill();
    let gone = wait_until(
        Duration::from_secs(15),
        "the killed provider to expire",
        || async {
            listed(&client, &greeter_key()).await == vec![survivor.address()]
                && listed(&client, &calculator_key()).await == vec![survivor.address()]
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let took = killed.elapsed();
    println!("killed provider left the consumer's list after {took:?} (watch saw it at {gone:?})");
    assert!(
        took <= Duration::from_secs(4),
        "took {took:?}, more than TTL 2 s + 2 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_keeps_calling_known_providers_while_etcd_is_down() {
    let mut etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let a = Provider::start(&url, &[]);
    let b = Provider::start(&url, &[]);
    let client = Client::discover(rpc_registry::connect(&url).await.unwrap());
    let both = [a.address(), b.address()];
    wait_listed(&client, &greeter_key(), &both, Duration::from_secs(10)).await;
    wait_listed(&client, &calculator_key(), &both, Duration::from_secs(10)).await;

    let load = Load::start(&client, 8);
    wait_until(Duration::from_secs(10), "calls to flow", || async {
        load.calls() > 100
    })
    .await
    .unwrap();
    etcd.stop();
    let before = load.calls();
    let entry = client
        .directory()
        .and_then(|d| d.cached(&greeter_key()))
        .expect("the greeter entry is cached");
    // The directory notices the registry is gone and reports its list as stale ...
    wait_until(
        Duration::from_secs(10),
        "the list to be reported stale",
        || async { entry.is_stale() },
    )
    .await
    .unwrap();
    // ... keeps it for longer than the lease TTL ...
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = load.calls() - before;
    assert_eq!(entry.instances().len(), 2);
    let report = load.finish().await;
    assert!(during > 100, "only {during} calls while etcd was down");
    assert!(
        report.failures.is_empty(),
        "failed calls: {:?}",
        report.failures
    );
    assert_eq!(report.providers.len(), 2, "{:?}", report.providers);

    // etcd comes back empty (its data lost): the providers re-register, as reading the
    // registry itself shows (a call could be served from the consumer's cache), and the calls
    // go on.
    etcd.wipe_data();
    etcd.start_again().await;
    for key in [greeter_key(), calculator_key()] {
        for provider in [&a, &b] {
            let node = format!("/rpc/{key}/{}", provider.address());
            wait_until(
                Duration::from_secs(15),
                &format!("{node} to be registered again"),
                || async { matches!(etcd.get(&node).await, Ok(Some(_))) },
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let calc = CalculatorClient::new(client.clone());
    assert_eq!(calc.add(2, 2).await.unwrap(), 4);
}
