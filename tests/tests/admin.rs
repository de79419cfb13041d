//! The admin HTTP endpoint against real registries: readiness through a provider's life,
//! `POST /offline` and `/online` under load with etcd and ZooKeeper, and bad requests.

use std::sync::Arc;
use std::time::Duration;

use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::admin::{AdminEndpoint, METADATA_KEY};
use rpc_core::{Client, Registry, Server, ServerHandle};
use tests::admin::{raw_request, request};
use tests::consumer::{calculator_key, greeter_key, wait_listed, Load};
use tests::etcd::EtcdServer;
use tests::servers::example_server;
use tests::wait::wait_until;
use tests::zookeeper::ZookeeperServer;

/// How long a consumer's watch may take to see a node come or go.
const WATCH: Duration = Duration::from_secs(3);

struct AdminProvider {
    server: ServerHandle,
    admin: AdminEndpoint,
    registry: Arc<dyn Registry>,
}

/// An in-process example provider registered through its own registry connection, with an
/// admin endpoint published as `rpc.admin`.
async fn provider(url: &str) -> AdminProvider {
    let registry = rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let admin = AdminEndpoint::start("127.0.0.1:0", None)
        .await
        .unwrap_or_else(|e| panic!("admin endpoint: {e}"));
    let server = example_server(
        Server::builder()
            .registry(Arc::clone(&registry))
            .metadata(METADATA_KEY, admin.local_addr().to_string())
            .propagation_grace(Duration::from_millis(1500)),
    )
    .await;
    admin.attach_server(server.control());
    AdminProvider {
        server,
        admin,
        registry,
    }
}

async fn ready(admin: &AdminEndpoint) -> u16 {
    request(admin.local_addr(), "GET", "/health/ready").await.0
}

async fn wait_both(client: &Client, addrs: &[String]) {
    wait_listed(client, &greeter_key(), addrs, WATCH).await;
    wait_listed(client, &calculator_key(), addrs, WATCH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_before_registration_while_offline_and_while_draining() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let registry = rpc_registry::connect(&url).await.unwrap();
    let admin = AdminEndpoint::start("127.0.0.1:0", None).await.unwrap();
    assert_eq!(
        ready(&admin).await,
        503,
        "ready before the server registered"
    );
    assert_eq!(
        request(admin.local_addr(), "GET", "/health/live").await.0,
        200
    );

    let server = example_server(
        Server::builder()
            .registry(Arc::clone(&registry))
            .propagation_grace(Duration::from_millis(1500)),
    )
    .await;
    admin.attach_server(server.control());
    assert_eq!(
        ready(&admin).await,
        200,
        "ready once serving and registered"
    );

    assert_eq!(request(admin.local_addr(), "POST", "/offline").await.0, 200);
    assert_eq!(ready(&admin).await, 503, "ready while offline");
    assert_eq!(request(admin.local_addr(), "POST", "/online").await.0, 200);
    assert_eq!(ready(&admin).await, 200, "ready after online");

    let shutdown = tokio::spawn(server.shutdown());
    wait_until(
        Duration::from_secs(5),
        "ready to turn 503 in the drain",
        || async { ready(&admin).await == 503 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !shutdown.is_finished(),
        "the check must happen during the drain, not after it"
    );
    shutdown.await.unwrap().unwrap();
    assert_eq!(ready(&admin).await, 503, "ready after shutdown");
    registry.shutdown().await.unwrap();
}

/// 3 providers, 50 calls in flight: one goes offline (its node leaves the registry, no
/// call fails, it still answers a direct call) and comes back online (traffic returns).
async fn offline_and_online_under_load(url: &str) {
    let providers = futures::future::join_all((0..3).map(|_| provider(url))).await;
    let addrs: Vec<String> = providers
        .iter()
        .map(|p| p.server.published_addr())
        .collect();
    let client = Client::discover(rpc_registry::connect(url).await.unwrap());
    wait_both(&client, &addrs).await;
    let target = &providers[0];
    let entry = client
        .directory()
        .unwrap()
        .service(&greeter_key())
        .await
        .unwrap();
    let published = entry
        .instances()
        .iter()
        .find(|i| i.address() == addrs[0])
        .and_then(|i| i.metadata.get(METADATA_KEY).cloned());
    assert_eq!(published, Some(target.admin.local_addr().to_string()));

    let load = Load::start(&client, 50);
    let counter = load.counter();
    wait_until(Duration::from_secs(10), "load to flow", || async {
        counter() > 300
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let (status, body) = request(target.admin.local_addr(), "POST", "/offline").await;
    assert_eq!((status, body.trim()), (200, "offline"));
    wait_both(&client, &addrs[1..]).await;
    assert_eq!(ready(&target.admin).await, 503);
    let direct = Client::connect(&addrs[0]).await.unwrap();
    assert_eq!(
        GreeterClient::new(direct.clone()).whoami().await.unwrap(),
        addrs[0],
        "an offline provider still answers direct calls"
    );
    let before = counter();
    wait_until(Duration::from_secs(10), "load to go on", || async {
        counter() > before + 300
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let (status, body) = request(target.admin.local_addr(), "POST", "/online").await;
    assert_eq!((status, body.trim()), (200, "serving"));
    wait_both(&client, &addrs).await;
    assert_eq!(ready(&target.admin).await, 200);
    load.finish().await.assert_no_failures();

    let again = Load::start(&client, 50);
    let counter = again.counter();
    wait_until(Duration::from_secs(10), "load to flow again", || async {
        counter() > 600
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let report = again.finish().await;
    report.assert_no_failures();
    assert!(
        report.providers.get(&addrs[0]).copied().unwrap_or(0) > 0,
        "no traffic returned to the provider after /online: {:?}",
        report.providers
    );
    assert_eq!(CalculatorClient::new(direct).add(1, 2).await.unwrap(), 3);
    for p in providers {
        p.server.shutdown().await.unwrap();
        p.registry.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_under_load_with_etcd_fails_no_call() {
    let etcd = EtcdServer::start().await;
    offline_and_online_under_load(&etcd.registry_url("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_under_load_with_zookeeper_fails_no_call() {
    let zookeeper = ZookeeperServer::start().await;
    offline_and_online_under_load(&zookeeper.registry_url("")).await;
}

#[tokio::test]
async fn bad_admin_requests_get_a_4xx_and_the_process_keeps_serving() {
    let admin = AdminEndpoint::start("127.0.0.1:0", None).await.unwrap();
    let server = example_server(Server::builder()).await;
    admin.attach_server(server.control());
    let addr = admin.local_addr();

    assert_eq!(request(addr, "GET", "/no/such/path").await.0, 404);
    assert_eq!(request(addr, "POST", "/health/ready").await.0, 405);
    assert_eq!(request(addr, "GET", "/offline").await.0, 405);
    assert_eq!(request(addr, "DELETE", "/services").await.0, 405);
    let declared_huge = raw_request(
        addr,
        "POST /offline HTTP/1.1\r\nContent-Length: 100000000",
        &[b'x'; 1024],
    )
    .await;
    assert_eq!(declared_huge.map(|r| r.0), Some(413));
    let chunk = format!("{:x}\r\n{}\r\n0\r\n\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let chunked_huge = raw_request(
        addr,
        "POST /online HTTP/1.1\r\nTransfer-Encoding: chunked",
        chunk.as_bytes(),
    )
    .await;
    assert_eq!(chunked_huge.map(|r| r.0), Some(413));
    let huge_head = format!(
        "GET /services HTTP/1.1\r\nX-Padding: {}",
        "p".repeat(64 * 1024)
    );
    let status = raw_request(addr, &huge_head, b"").await.map(|r| r.0);
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "a huge header got {status:?}"
    );
    let garbage = raw_request(addr, "NOT\u{1} HTTP AT ALL", b"")
        .await
        .map(|r| r.0);
    assert!(
        garbage.is_none_or(|s| (400..500).contains(&s)),
        "garbage got {garbage:?}"
    );
    assert_eq!(
        server.control().state(),
        rpc_core::server::ServingState::Serving,
        "no bad request changed the server's state"
    );

    assert_eq!(request(addr, "GET", "/health/live").await.0, 200);
    assert_eq!(request(addr, "GET", "/health/ready").await.0, 200);
    let (status, services) = request(addr, "GET", "/services").await;
    assert_eq!(status, 200);
    let services: serde_json::Value = serde_json::from_str(&services).unwrap();
    assert_eq!(services["serves"]["state"], "serving");
    assert_eq!(
        services["serves"]["services"].as_array().map(Vec::len),
        Some(2)
    );
    let client = Client::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    assert_eq!(CalculatorClient::new(client).add(2, 3).await.unwrap(), 5);
    server.shutdown().await.unwrap();
}
