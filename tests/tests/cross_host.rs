//! Running across hosts (issue 13): the published address (`--advertise`), one owner per
//! node on etcd and ZooKeeper, and a `start()` that is all or nothing.
//!
//! Traffic goes to 127.0.0.0/8 only: every address there routes to loopback on Linux, so
//! 127.0.0.2 stands in for "another host's address". The test that publishes this machine's
//! own non-loopback address checks the published value and sends nothing to it.

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use example_provider::{CalculatorServer, ExampleProvider, GreeterClient, GreeterServer};
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchStream};
use rpc_core::{Client, Server};
use tests::consumer::greeter_key;
use tests::etcd::EtcdServer;
use tests::process::{binary, Provider};
use tests::wait::holds_for;
use tests::zookeeper::ZookeeperServer;

/// The heartbeat with `ttl=2` (and the one the etcd claimant test sets with a longer ttl,
/// so that a slow machine cannot let its lease lapse).
const HEARTBEAT: Duration = Duration::from_millis(667);

fn node(address: &str) -> String {
    format!("/rpc/{}/{address}", greeter_key())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn start_provider(listen: String, url: String, extra: Vec<String>) -> Provider {
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        Provider::start_on(&listen, &url, &extra)
    })
    .await
    .unwrap_or_else(|e| panic!("provider start panicked: {e}"))
}

/// Runs example-provider expecting it to fail at start; returns its exit success and stderr.
async fn start_expecting_failure(listen: &str, url: &str, extra: &[&str]) -> (bool, String) {
    let child = tokio::process::Command::new(binary("example-provider"))
        .args(["--listen", listen, "--registry", url])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example-provider: {e}"));
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the second provider kept running; it should have failed"))
        .unwrap_or_else(|e| panic!("wait: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `mod_revision` and lease of an etcd key, from `etcdctl get -w json`.
async fn etcd_revision(etcd: &EtcdServer, key: &str) -> Option<(i64, i64)> {
    let json = etcd.etcdctl(&["get", "-w", "json", "--", key]).await.ok()?;
    let value: serde_json::Value = serde_json::from_str(&json).ok()?;
    let kv = value.get("kvs")?.get(0)?;
    Some((
        kv.get("mod_revision")?.as_i64()?,
        kv.get("lease")?.as_i64()?,
    ))
}

async fn published_host(etcd: &EtcdServer, port: u16) -> Option<String> {
    let listing = etcd
        .etcdctl(&[
            "get",
            "--prefix",
            "--print-value-only",
            "/rpc/example.Greeter:1.0.0/",
        ])
        .await
        .ok()?;
    listing
        .lines()
        .filter_map(|line| ServiceInstance::from_json(line.as_bytes()).ok())
        .find(|instance| instance.port == port)
        .map(|instance| instance.host)
}

#[tokio::test]
async fn advertise_publishes_that_host_with_the_bound_port_and_consumers_reach_it_there() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let port = free_port();
    let _provider = start_provider(
        format!("0.0.0.0:{port}"),
        url.clone(),
        vec!["--advertise".into(), "127.0.0.2".into()],
    )
    .await;
    let published = format!("127.0.0.2:{port}");
    let value = etcd.get(&node(&published)).await.expect("etcdctl get");
    let instance = ServiceInstance::from_json(&value.expect("the node at the advertised address"))
        .expect("layout JSON");
    assert_eq!((instance.host.as_str(), instance.port), ("127.0.0.2", port));

    let client = Client::discover(rpc_registry::connect(&url).await.expect("connect"));
    let greeter = GreeterClient::new(client);
    let whoami = greeter.whoami().await.expect("a call through the registry");
    assert_eq!(
        whoami, published,
        "the consumer must reach the provider at the published address"
    );
}

#[tokio::test]
async fn a_wildcard_listen_without_advertise_publishes_a_non_loopback_address() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let port = free_port();
    let _provider = start_provider(format!("0.0.0.0:{port}"), url, vec![]).await;
    let host = published_host(&etcd, port)
        .await
        .expect("the provider's node");
    let ip: IpAddr = host
        .parse()
        .unwrap_or_else(|e| panic!("published host {host:?}: {e}"));
    println!("published {ip}:{port}");
    // Only the published value is checked: nothing is sent to this machine's other address.
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "published {ip}, which consumers on other hosts cannot dial"
    );
}

#[tokio::test]
async fn a_second_claimant_on_etcd_fails_naming_the_path_and_the_first_node_is_untouched() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=4&heartbeat=0.667");
    let port = free_port();
    let first = start_provider(format!("127.0.0.1:{port}"), url.clone(), vec![]).await;
    let path = node(&first.address());
    let before = etcd_revision(&etcd, &path).await.expect("the first node");

    let (ok, stderr) = start_expecting_failure(
        &format!("127.0.0.3:{port}"),
        &url,
        &["--advertise", "127.0.0.1"],
    )
    .await;
    println!("second provider said: {stderr}");
    assert!(!ok, "the second claimant must exit non-zero");
    assert!(
        stderr.contains(&path),
        "the error must name {path}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{:x}", before.1)),
        "the error must name the owner's lease: {stderr}"
    );
    holds_for(
        3 * HEARTBEAT,
        "the first node to stay untouched",
        || async { etcd_revision(&etcd, &path).await == Some(before) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_second_claimant_on_zookeeper_fails_naming_the_path_and_the_first_node_is_untouched() {
    let zk = ZookeeperServer::start().await;
    let url = zk.registry_url("ttl=2");
    let port = free_port();
    let first = start_provider(format!("127.0.0.1:{port}"), url.clone(), vec![]).await;
    let path = node(&first.address());
    let before = zk_stat(&zk, &path).await.expect("the first node");

    let (ok, stderr) = start_expecting_failure(
        &format!("127.0.0.3:{port}"),
        &url,
        &["--advertise", "127.0.0.1"],
    )
    .await;
    println!("second provider said: {stderr}");
    assert!(!ok, "the second claimant must exit non-zero");
    assert!(
        stderr.contains(&path),
        "the error must name {path}: {stderr}"
    );
    holds_for(
        3 * HEARTBEAT,
        "the first node to stay untouched",
        || async { zk_stat(&zk, &path).await == Some(before) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A ZooKeeper node's `czxid`, `mzxid` and `ephemeralOwner`.
async fn zk_stat(zk: &ZookeeperServer, path: &str) -> Option<(i64, i64, i64)> {
    let (_, stat) = zk.raw_client().await.get_data(path).await.ok()?;
    Some((stat.czxid, stat.mzxid, stat.ephemeral_owner))
}

/// A registry that refuses the second `register` it sees.
struct FailsSecondRegister {
    inner: Arc<dyn Registry>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Registry for FailsSecondRegister {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
            return Err(RegistryError::Unavailable {
                registry: "test",
                endpoints: "nowhere".into(),
                message: "the second register fails".into(),
            });
        }
        self.inner.register(instance).await
    }
    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.inner.deregister(instance).await
    }
    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.inner.discover(key).await
    }
    async fn watch(&self, key: &ServiceKey) -> Result<WatchStream, RegistryError> {
        self.inner.watch(key).await
    }
    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.inner.services().await
    }
    async fn shutdown(&self) -> Result<(), RegistryError> {
        self.inner.shutdown().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_leaves_nothing_listed_over_two_heartbeats() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let registry = Arc::new(FailsSecondRegister {
        inner: rpc_registry::connect(&url).await.expect("connect"),
        calls: AtomicUsize::new(0),
    });
    let provider = ExampleProvider::default();
    let started = Server::builder()
        .bind("127.0.0.1:0")
        .serve(GreeterServer::new(provider.clone()))
        .serve(CalculatorServer::new(provider))
        .registry(registry.clone())
        .start()
        .await;
    let error = match started {
        Ok(_) => panic!("start must fail when a registration fails"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("the second register fails"), "{error}");
    assert_eq!(registry.calls.load(Ordering::SeqCst), 2);
    let listing = || async {
        etcd.etcdctl(&["get", "--prefix", "--keys-only", "/rpc/"])
            .await
            .map(|keys| keys.trim().to_string())
    };
    // Withdrawn before start() returned, and not put back by the keeper since.
    holds_for(2 * HEARTBEAT, "nothing listed", || async {
        listing().await.is_ok_and(|keys| keys.is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
