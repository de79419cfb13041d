//! Zero failed calls while providers die, restart, or are listed but dead — real provider
//! processes, a real etcd, and fail-over (the default policy).

use std::time::Duration;

use rpc_core::registry::ServiceInstance;
use rpc_core::Client;
use tests::consumer::{calculator_key, greeter_key, wait_listed, Load};
use tests::etcd::EtcdServer;
use tests::net::free_port;
use tests::process::Provider;
use tests::wait::wait_until;

async fn consumer(url: &str) -> Client {
    Client::discover(rpc_registry::connect(url).await.unwrap())
}

async fn wait_all(client: &Client, addrs: &[String]) {
    wait_listed(client, &greeter_key(), addrs, Duration::from_secs(10)).await;
    wait_listed(client, &calculator_key(), addrs, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_killed_under_load_costs_no_failed_call() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let mut providers: Vec<Provider> = (0..3).map(|_| Provider::start(&url, &[])).collect();
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    let client = consumer(&url).await;
    wait_all(&client, &addrs).await;

    let load = Load::start(&client, 50);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    providers[1].kill();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let report = load.finish().await;
    report.assert_no_failures();
    assert!(report.calls > 500, "only {} calls", report.calls);
}

/// The restarts run on a multi-threaded runtime with process control that never blocks it
/// (the provider's SIGTERM is awaited, its replacement started off the runtime), so the
/// load keeps flowing through every deregister -> goaway -> drain window, and the test
/// checks that it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_provider_costs_no_failed_call() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let args = ["--propagation-grace", "0.5"];
    let mut providers = Vec::new();
    for _ in 0..3 {
        providers.push(Provider::spawn_on("127.0.0.1:0", &url, &args).await);
    }
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    let client = consumer(&url).await;
    wait_all(&client, &addrs).await;

    let load = Load::start(&client, 50);
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = load.calls();
        assert!(
            providers[i].terminate_async(Duration::from_secs(15)).await,
            "provider {i} did not exit cleanly"
        );
        let during = load.calls() - before;
        assert!(
            during > 100,
            "only {during} calls while provider {i} deregistered, sent goaway and drained"
        );
        // Back on the same port before the next one goes.
        providers[i] = Provider::spawn_on(&addrs[i], &url, &args).await;
        wait_all(&client, &addrs).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.finish().await;
    report.assert_no_failures();
}

#[tokio::test]
async fn a_hand_written_node_at_a_closed_port_costs_no_failed_call_and_is_ejected() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers: Vec<Provider> = (0..2).map(|_| Provider::start(&url, &[])).collect();
    let dead_port = free_port();
    let dead = format!("127.0.0.1:{dead_port}");
    for key in [greeter_key(), calculator_key()] {
        let node = ServiceInstance::new(&key, "127.0.0.1", dead_port);
        etcd.etcdctl(&["put", &format!("/rpc/{key}/{dead}"), &node.to_json()])
            .await
            .unwrap();
    }
    let mut addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    addrs.push(dead.clone());
    let client = consumer(&url).await;
    wait_all(&client, &addrs).await;

    let load = Load::start(&client, 20);
    let ejected = wait_until(
        Duration::from_secs(10),
        "the dead node to be ejected",
        || async {
            let Some(entry) = client.directory().and_then(|d| d.cached(&greeter_key())) else {
                return false;
            };
            let members = entry.members();
            members
                .endpoints()
                .iter()
                .any(|e| e.addr().to_string() == dead && e.ejections() >= 1)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.finish().await;
    ejected.unwrap_or_else(|e| panic!("{e}"));
    report.assert_no_failures();
    assert!(!report.providers.contains_key(&dead));
    // Once ejected, the dead node is no longer picked: most calls never touched it.
    let entry = client
        .directory()
        .and_then(|d| d.cached(&greeter_key()))
        .unwrap();
    let members = entry.members();
    let dead_calls: u64 = members
        .endpoints()
        .iter()
        .filter(|e| e.addr().to_string() == dead)
        .map(|e| e.calls())
        .sum();
    let all_calls: u64 = members.endpoints().iter().map(|e| e.calls()).sum();
    println!("dead node took {dead_calls} of {all_calls} greeter attempts");
    assert!(
        dead_calls * 20 < all_calls,
        "the dead node kept receiving calls: {dead_calls} of {all_calls}"
    );
}
