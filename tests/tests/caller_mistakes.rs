//! A caller's mistake is never turned into a provider fault, and a provider's misconfiguration
//! never into a failed call: a node at a port that serves another service, a deadline shorter
//! than the method, an argument over the frame limit, every provider gone in order. Real
//! provider processes and a real etcd.

use std::time::Duration;

use example_provider::{CalculatorClient, CalculatorServer, ExampleProvider, GreeterClient};
use rpc_core::cluster::{ClusterConfig, EjectionConfig, Endpoint};
use rpc_core::registry::{ServiceInstance, ServiceKey};
use rpc_core::{CallOptions, Client, RpcError, Server, Status};
use tests::consumer::{calculator_key, greeter_key, wait_listed, Load};
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::wait::wait_until;

async fn consumer(url: &str, config: ClusterConfig) -> Client {
    Client::builder()
        .cluster(config)
        .discover(rpc_registry::connect(url).await.unwrap())
}

/// The endpoint `client` keeps for `addr` under `key`.
fn endpoint(client: &Client, key: &ServiceKey, addr: &str) -> Endpoint {
    let entry = client
        .directory()
        .and_then(|d| d.cached(key))
        .unwrap_or_else(|| panic!("{key} is not cached"));
    let members = entry.members();
    members
        .endpoints()
        .iter()
        .find(|e| e.addr().to_string() == addr)
        .cloned()
        .unwrap_or_else(|| panic!("{addr} is not listed for {key}"))
}

/// Writes a node for `key` at `addr`, as an operator would by hand.
async fn put_node(etcd: &EtcdServer, key: &ServiceKey, addr: std::net::SocketAddr) {
    let node = ServiceInstance::new(key, "127.0.0.1", addr.port());
    etcd.etcdctl(&["put", &format!("/rpc/{key}/{addr}"), &node.to_json()])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_at_a_port_serving_another_service_costs_no_call_and_is_skipped_for_that_service_only(
) {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let mut providers = Vec::new();
    for _ in 0..2 {
        providers.push(Provider::spawn_on("127.0.0.1:0", &url, &[]).await);
    }
    // A server with only the Calculator, listed (by hand) for both services.
    let other = Server::builder()
        .serve(CalculatorServer::new(ExampleProvider::default()))
        .start()
        .await
        .unwrap();
    let wrong = other.local_addr();
    put_node(&etcd, &greeter_key(), wrong).await;
    put_node(&etcd, &calculator_key(), wrong).await;
    let mut addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    addrs.push(wrong.to_string());
    let client = consumer(&url, ClusterConfig::default()).await;
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(10)).await;
    wait_listed(&client, &calculator_key(), &addrs, Duration::from_secs(10)).await;

    let load = Load::start(&client, 20);
    wait_until(Duration::from_secs(10), "calls to flow", || async {
        load.calls() > 600
    })
    .await
    .unwrap();
    load.finish().await.assert_no_failures();

    // Afterwards the address is not picked for the Greeter ...
    let at_wrong = endpoint(&client, &greeter_key(), &wrong.to_string());
    assert!(!at_wrong.is_ejected(), "ejected for every service");
    assert_eq!(at_wrong.failures(), 0, "counted as a dead provider");
    let greeter = GreeterClient::new(client.clone());
    let before = at_wrong.calls();
    for i in 0..60 {
        assert_eq!(
            greeter.hello(format!("{i}")).await.unwrap(),
            format!("Hello, {i}!")
        );
    }
    assert_eq!(
        at_wrong.calls(),
        before,
        "the address that lacks the Greeter was still picked for it"
    );
    // ... and still is for the Calculator, which it serves.
    let calc = CalculatorClient::new(client.clone());
    for i in 0..60 {
        assert_eq!(calc.add(i, 1).await.unwrap(), i + 1);
    }
    assert!(
        at_wrong.calls() >= before + 15,
        "the address stopped getting Calculator calls: {} then {}",
        before,
        at_wrong.calls()
    );
    other.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_deadline_is_shorter_than_the_method_do_not_eject_the_provider() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let provider = Provider::spawn_on("127.0.0.1:0", &url, &[]).await;
    // No cap in the way: the test is about what counts, not how many may be out.
    let client = consumer(
        &url,
        ClusterConfig::default().ejection(EjectionConfig::default().max_ejected_fraction(1.0)),
    )
    .await;
    wait_listed(
        &client,
        &calculator_key(),
        &[provider.address()],
        Duration::from_secs(10),
    )
    .await;
    let calc = CalculatorClient::new(client.clone());
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    let hasty = calc
        .clone()
        .with_options(CallOptions::new().with_deadline(Duration::from_millis(20)));
    for _ in 0..5 {
        // Either timer may fire first: the consumer's, or the provider's for the deadline the
        // request carries.
        let err = hasty.sleep(100).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(Status::DeadlineExceeded),
            "expected the caller's deadline, got {err}"
        );
    }
    let at = endpoint(&client, &calculator_key(), &provider.address());
    assert!(
        !at.is_ejected(),
        "the caller's deadline ejected the provider"
    );
    assert_eq!(at.ejections(), 0);
    assert_eq!(
        at.failures(),
        0,
        "the caller's deadline counted as failures"
    );
    for i in 0..10 {
        assert_eq!(calc.add(i, i).await.unwrap(), 2 * i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_over_the_frame_limit_fails_alone_and_locally() {
    const MIB: usize = 1024 * 1024;
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let provider = tokio::task::spawn_blocking({
        let url = url.clone();
        move || Provider::start_with_env("127.0.0.1:0", &url, &[], &[("RPC_MAX_FRAME", "1048576")])
    })
    .await
    .unwrap();
    let client = Client::builder()
        .max_frame(MIB)
        .discover(rpc_registry::connect(&url).await.unwrap());
    wait_listed(
        &client,
        &calculator_key(),
        &[provider.address()],
        Duration::from_secs(10),
    )
    .await;
    let calc = CalculatorClient::new(client.clone());
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);

    let sleepers: Vec<_> = (0..10)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.sleep(200).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await; // the sleeps are in flight
    let err = calc.echo(vec![7u8; 2 * MIB]).await.unwrap_err();
    assert!(
        matches!(err, RpcError::RequestTooLarge { .. }),
        "expected a local too-large error, got {err}"
    );
    assert!(!err.is_retryable(true), "{err}");
    assert!(err.to_string().contains("echo"), "{err}");
    for sleeper in sleepers {
        sleeper
            .await
            .unwrap()
            .expect("a call beside the big one failed");
    }
    let at = endpoint(&client, &calculator_key(), &provider.address());
    assert_eq!(at.failures(), 0, "a failure was recorded on the provider");
    assert!(!at.is_ejected());
    assert_eq!(at.calls(), 11, "the big call reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_provider_leaves_in_order_calls_fail_with_no_provider() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let mut provider =
        Provider::spawn_on("127.0.0.1:0", &url, &["--propagation-grace", "0.2"]).await;
    let client = consumer(&url, ClusterConfig::default()).await;
    wait_listed(
        &client,
        &greeter_key(),
        &[provider.address()],
        Duration::from_secs(10),
    )
    .await;
    let greeter = GreeterClient::new(client.clone());
    assert_eq!(greeter.whoami().await.unwrap(), provider.address());
    assert!(provider.terminate_async(Duration::from_secs(15)).await);
    let entry = client
        .directory()
        .and_then(|d| d.cached(&greeter_key()))
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "the registry to list no provider",
        || async { entry.is_empty_protected() },
    )
    .await
    .unwrap();
    let err = greeter.whoami().await.unwrap_err();
    match &err {
        RpcError::NoProvider { service } => assert_eq!(service, &greeter_key().to_string()),
        other => panic!("expected NoProvider naming the Greeter, got {other}"),
    }
}
