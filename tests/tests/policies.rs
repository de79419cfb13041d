//! Fail-fast, fail-safe and fail-back, and deadlines across retries, against a real etcd.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use example_provider::GreeterClient;
use rpc_core::cluster::ClusterConfig;
use rpc_core::registry::{ServiceInstance, ServiceKey};
use rpc_core::{CallOptions, Client, RpcError, Server, Status};
use tests::consumer::{greeter_key, wait_listed};
use tests::etcd::EtcdServer;
use tests::net::free_port;
use tests::process::Provider;
use tests::wait::wait_until;

async fn consumer(url: &str, policy: &str) -> Client {
    let config = ClusterConfig::default()
        .policy_named(policy)
        .unwrap_or_else(|e| panic!("{e}"));
    Client::builder()
        .cluster(config)
        .discover(rpc_registry::connect(url).await.unwrap())
}

/// Writes a node for `key` at a port where nothing listens; returns its address.
async fn dead_node(etcd: &EtcdServer, key: &ServiceKey, port: u16) -> String {
    let addr = format!("127.0.0.1:{port}");
    let node = ServiceInstance::new(key, "127.0.0.1", port);
    etcd.etcdctl(&["put", &format!("/rpc/{key}/{addr}"), &node.to_json()])
        .await
        .unwrap();
    addr
}

#[tokio::test]
async fn fail_fast_returns_the_first_failures_error() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let live = Provider::start(&url, &[]);
    let dead = dead_node(&etcd, &greeter_key(), free_port()).await;
    let client = consumer(&url, "failfast").await;
    wait_listed(
        &client,
        &greeter_key(),
        &[live.address(), dead.clone()],
        Duration::from_secs(10),
    )
    .await;
    let greeter = GreeterClient::new(client);
    // Round-robin alternates, so one of the first two calls goes to the dead node.
    let mut first_error = None;
    for _ in 0..2 {
        if let Err(e) = greeter.whoami().await {
            first_error = Some(e);
            break;
        }
    }
    let err = first_error.expect("fail-fast hid the dead node's failure");
    match &err {
        RpcError::Connect { addr, .. } => assert_eq!(addr.to_string(), dead),
        other => panic!("expected the connect error of {dead}, got {other}"),
    }
}

#[tokio::test]
async fn fail_safe_returns_the_callers_default() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let dead = dead_node(&etcd, &greeter_key(), free_port()).await;
    let client = consumer(&url, "failsafe").await;
    wait_listed(&client, &greeter_key(), &[dead], Duration::from_secs(10)).await;
    let greeter = GreeterClient::new(client);
    let fallback = "nobody".to_string();
    let safe = greeter.with_options(CallOptions::new().with_fallback(&fallback));
    assert_eq!(safe.whoami().await.unwrap(), "nobody");
    assert_eq!(safe.hello("x".into()).await.unwrap(), "nobody");
}

mod counter {
    #[rpc_core::service(name = "test.Counter")]
    pub trait Counter {
        async fn bump(&self, by: u64) -> u64;
    }
}
use counter::{Counter, CounterClient, CounterServer};

#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

impl Counter for Count {
    async fn bump(&self, by: u64) -> u64 {
        self.0.fetch_add(by, Ordering::SeqCst) + by
    }
}

#[tokio::test]
async fn fail_back_eventually_delivers_the_call() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let key = ServiceKey::new("test.Counter", "1.0.0");
    let port = free_port();
    let addr = dead_node(&etcd, &key, port).await;
    let client = consumer(&url, "failback").await;
    wait_listed(
        &client,
        &key,
        std::slice::from_ref(&addr),
        Duration::from_secs(10),
    )
    .await;
    let counter = CounterClient::new(client);
    // The provider is down: the caller learns at once, and the call is queued.
    assert!(counter.bump(5).await.is_err());

    // The provider comes up on that address; the queued call reaches it.
    let count = Count::default();
    let server = Server::builder()
        .bind(addr.clone())
        .serve(CounterServer::new(count.clone()))
        .start()
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(15),
        "the queued call to be delivered",
        || async { count.0.load(Ordering::SeqCst) == 5 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    server.shutdown().await.unwrap();
}

mod slow {
    #[rpc_core::service(name = "test.Slow")]
    pub trait Slow {
        /// Returns after `ms` milliseconds; safe to run twice.
        #[idempotent]
        async fn wait(&self, ms: u64);
    }
}
use slow::{Slow, SlowClient, SlowServer};

#[derive(Clone, Default)]
struct Waits(Arc<AtomicU64>);

impl Slow for Waits {
    async fn wait(&self, ms: u64) {
        self.0.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// The method is `#[idempotent]` and each attempt is bounded to 50 ms, so timed-out attempts
/// really are retried on the other provider (the servers count them); the 200 ms deadline
/// still bounds the whole call, retries included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200ms_deadline_on_a_1s_call_fails_in_under_300ms_retries_included() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let key = ServiceKey::new("test.Slow", "1.0.0");
    let waits = Waits::default();
    let mut servers = Vec::new();
    for _ in 0..2 {
        let server = Server::builder()
            .registry(rpc_registry::connect(&url).await.unwrap())
            .serve(SlowServer::new(waits.clone()))
            .start()
            .await
            .unwrap();
        servers.push(server);
    }
    let addrs: Vec<String> = servers.iter().map(|s| s.local_addr().to_string()).collect();
    let config = ClusterConfig::default()
        .max_attempts(10)
        .attempt_timeout(Some(Duration::from_millis(50)));
    let client = Client::builder()
        .cluster(config)
        .discover(rpc_registry::connect(&url).await.unwrap());
    wait_listed(&client, &key, &addrs, Duration::from_secs(10)).await;
    let slow = SlowClient::new(client)
        .with_options(CallOptions::new().with_deadline(Duration::from_millis(200)));
    slow.wait(0).await.unwrap(); // connections are open
    let before = waits.0.load(Ordering::SeqCst);
    let started = Instant::now();
    let err = slow.wait(1000).await.unwrap_err();
    let took = started.elapsed();
    let attempts = waits.0.load(Ordering::SeqCst) - before;
    println!("{attempts} attempts in {took:?}: {err}");
    assert_eq!(err.status(), Some(Status::DeadlineExceeded), "{err}");
    assert!(attempts >= 2, "no retry happened: {attempts} attempt(s)");
    assert!(took < Duration::from_millis(300), "took {took:?}");
    for server in servers {
        server.shutdown().await.unwrap();
    }
}
