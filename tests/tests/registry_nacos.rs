//! The Nacos backend through the official nacos-sdk against a real rnacos (a Nacos
//! 2.x-compatible server): the conformance suite, then the failure cases that apply — a
//! provider killed with SIGKILL, the server down (calls keep flowing, the watch reports it)
//! and back (the SDK registers every instance again) — and names Nacos cannot take.
//!
//! Needs `scripts/install-deps.sh --nacos` (rnacos) and, for the SIGKILL case, an
//! example-provider built with Nacos: `cargo build -p example-provider --features nacos`.
//! Run: `cargo test -p tests --features nacos --test registry_nacos`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use example_provider::GreeterClient;
use rpc_core::registry::{Registry, ServiceInstance, ServiceKey, WatchEvent};
use rpc_core::{Client, Server};
use tests::consumer::{greeter_key, wait_listed, Load};
use tests::nacos::{NacosBackend, RnacosServer};
use tests::process::Provider;
use tests::servers::example_server;
use tests::wait::{addresses, next_event, wait_until, watch_until};

tests::conformance_tests!(NacosBackend::start("").await);

/// The registries' TTL: the bound for a killed provider to go. (The SDK's own heartbeats
/// and timeouts are fixed; `ttl` sets our resync interval, ttl/3.)
const TTL: Duration = Duration::from_secs(30);

async fn registry(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instance_carries_the_documented_fields_and_the_service_name() {
    let server = RnacosServer::start().await;
    let provider = registry(&server.registry_url("")).await;
    assert_eq!(provider.backend(), "nacos");
    let mut inst = ServiceInstance::new(&greeter_key(), "127.0.0.1", 9201);
    inst.weight = 7;
    inst.metadata.insert("rpc.tag".into(), "blue".into());
    provider.register(&inst).await.unwrap();
    let hosts = server.list("example.Greeter:1.0.0").await;
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let host = &hosts[0];
    assert_eq!(host["ip"], "127.0.0.1");
    assert_eq!(host["port"], 9201);
    assert_eq!(host["weight"].as_f64(), Some(7.0), "{host}");
    assert_eq!(host["ephemeral"], true, "{host}");
    assert_eq!(host["metadata"]["rpc.tag"], "blue", "{host}");
    assert_eq!(host["metadata"]["rpc.service"], "example.Greeter", "{host}");
    assert_eq!(host["metadata"]["rpc.version"], "1.0.0", "{host}");
    assert_eq!(
        host["metadata"]["rpc.registered_at_ms"],
        inst.registered_at_ms.to_string(),
        "{host}"
    );
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_the_sdk_group_separator_are_refused() {
    let server = RnacosServer::start().await;
    let registry = registry(&server.registry_url("")).await;
    let key = ServiceKey::new("bad@@name", "1.0.0");
    let err = registry
        .register(&ServiceInstance::new(&key, "127.0.0.1", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("@@"), "{err}");
    assert!(registry.watch(&key).await.is_err());
    registry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_killed_with_sigkill_leaves_every_watch_within_the_ttl() {
    let server = RnacosServer::start().await;
    let url = server.registry_url("");
    let victim = Provider::start(&url, &[]);
    let consumer = registry(&url).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let address = victim.address();
    watch_until(
        &mut watch,
        Duration::from_secs(15),
        "the provider",
        |list| addresses(list).contains(&address),
    )
    .await
    .unwrap();
    let killed = Instant::now();
    tokio::task::spawn_blocking(move || {
        let mut victim = victim;
        victim.kill();
    })
    .await
    .unwrap();
    watch_until(&mut watch, TTL, "the killed provider to go", |list| {
        !addresses(list).contains(&address)
    })
    .await
    .unwrap();
    println!("killed provider gone after {:?}", killed.elapsed());
    consumer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_flowing_while_nacos_is_down_and_providers_return_after_a_restart() {
    let mut server = RnacosServer::start().await;
    // ttl=3: the watch lists every second, so it notices the outage quickly.
    let url = server.registry_url("ttl=3");
    let provider_registry = registry(&url).await;
    let provider = example_server(
        Server::builder()
            .registry(provider_registry.clone())
            .propagation_grace(Duration::from_millis(10)),
    )
    .await;
    let address = provider.local_addr().to_string();
    let consumer_registry = registry(&url).await;
    let client = Client::discover(consumer_registry.clone());
    wait_listed(
        &client,
        &greeter_key(),
        std::slice::from_ref(&address),
        Duration::from_secs(15),
    )
    .await;
    let mut watch = consumer_registry.watch(&greeter_key()).await.unwrap();
    match next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap()
    {
        WatchEvent::Snapshot(list) => assert_eq!(addresses(&list), vec![address.clone()]),
        other => panic!("expected the first snapshot, got {other:?}"),
    }

    let load = Load::start(&client, 4);
    wait_until(Duration::from_secs(10), "calls to flow", || async {
        load.calls() > 50
    })
    .await
    .unwrap();
    server.stop().await;
    match next_event(&mut watch, Duration::from_secs(10))
        .await
        .unwrap()
    {
        WatchEvent::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let before = load.calls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = load.calls() - before;
    let report = load.finish().await;
    assert!(during > 50, "only {during} calls while nacos was down");
    report.assert_no_failures();

    // Back, with its ephemeral instances gone: the SDK registers ours again.
    server.start_again().await;
    let up = Instant::now();
    watch_until(
        &mut watch,
        Duration::from_secs(40),
        "the provider registered again",
        |list| addresses(list) == vec![address.clone()],
    )
    .await
    .unwrap();
    println!("provider back {:?} after nacos was up again", up.elapsed());
    let greeter = GreeterClient::discover(consumer_registry.clone());
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    provider.shutdown().await.unwrap();
    consumer_registry.shutdown().await.unwrap();
}
