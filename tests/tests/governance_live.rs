//! Governance applied by real consumers to real provider processes, through real etcd and
//! ZooKeeper: disable under load, run-time weights, gray release by tag, condition rules,
//! malformed documents, and the rpcctl round trip.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use example_provider::{CalculatorClient, GreeterClient, RelayClient};
use rpc_core::cluster::governance::{GovernanceStore, Overrides, Routes};
use rpc_core::cluster::ClusterConfig;
use rpc_core::{Client, Registry, RpcError, ServiceKey};
use serde_json::{json, Value};
use tests::consumer::{calculator_key, greeter_key, wait_listed};
use tests::etcd::EtcdServer;
use tests::process::{binary, Provider};
use tests::wait::{holds_for, wait_until};
use tests::zookeeper::ZookeeperServer;

const LISTED: Duration = Duration::from_secs(15);

/// Warnings about refused governance documents seen by this test binary.
static REFUSED_WARNINGS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts `governance document refused` warnings (one test binary, one global subscriber).
struct CountRefused;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountRefused {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 |= format!("{value:?}").contains("governance document refused");
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if *event.metadata().level() == tracing::Level::WARN && message.0 {
            REFUSED_WARNINGS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn count_refused_warnings() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::WARN)
        .with(CountRefused)
        .with(tracing_subscriber::fmt::layer().with_test_writer());
    let _ = tracing::subscriber::set_global_default(subscriber);
}

async fn connect(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

async fn client(url: &str, config: ClusterConfig) -> Client {
    Client::builder()
        .cluster(config)
        .discover(connect(url).await)
}

async fn providers(url: &str, args: &[&[&str]]) -> Vec<Provider> {
    let mut started = Vec::new();
    for extra in args {
        started.push(Provider::spawn_on("127.0.0.1:0", url, extra).await);
    }
    started
}

fn addresses(providers: &[Provider]) -> Vec<String> {
    providers.iter().map(Provider::address).collect()
}

/// The governance documents in force on `client` for `key`.
fn in_force(
    client: &Client,
    key: &ServiceKey,
) -> Option<Arc<rpc_core::cluster::governance::InForce>> {
    Some(client.directory()?.cached(key)?.governance())
}

/// One `whoami` answer and when its call started.
type Answer = (Instant, Result<String, String>);

/// `concurrency` workers calling `whoami` until stopped; every answer is recorded.
struct WhoamiLoad {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl WhoamiLoad {
    fn start(client: &Client, concurrency: usize) -> WhoamiLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..concurrency)
            .map(|_| {
                let greeter = GreeterClient::new(client.clone());
                let (stop, answers) = (Arc::clone(&stop), Arc::clone(&answers));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let answer = greeter.whoami().await.map_err(|e| e.to_string());
                        answers.lock().unwrap().push((started, answer));
                    }
                })
            })
            .collect();
        WhoamiLoad {
            stop,
            answers,
            workers,
        }
    }

    /// Calls to `address` that started after `since`.
    fn reached_since(&self, address: &str, since: Instant) -> usize {
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .filter(|(started, who)| *started >= since && who.as_deref() == Ok(address))
            .count()
    }

    fn started_since(&self, since: Instant) -> usize {
        let answers = self.answers.lock().unwrap();
        answers
            .iter()
            .filter(|(started, _)| *started >= since)
            .count()
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

async fn disable_under_load(url: &str) {
    let providers = providers(url, &[&[], &[], &[]]).await;
    let addrs = addresses(&providers);
    let consumer = client(url, ClusterConfig::default()).await;
    wait_listed(&consumer, &greeter_key(), &addrs, LISTED).await;
    let store = GovernanceStore::new(connect(url).await);
    let target = addrs[0].clone();

    let load = WhoamiLoad::start(&consumer, 50);
    let began = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "every provider serving the load",
        || {
            let seen = addrs.iter().all(|a| load.reached_since(a, began) > 0);
            async move { seen }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    store
        .edit_overrides(&greeter_key(), |o| {
            o.address_mut(&target).disabled = true;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("disable: {e}"));
    let written = Instant::now();
    let settled = written + Duration::from_millis(100);
    // Enough calls after the bound to see a share of a third if it were still there.
    wait_until(
        Duration::from_secs(20),
        "1,500 calls after the disable",
        || {
            let n = load.started_since(settled);
            async move { n >= 1_500 }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let late = load.reached_since(&target, settled);
    assert_eq!(
        late, 0,
        "{late} calls that started more than 100 ms after the disable reached {target}"
    );
    let listed = connect(url).await.discover(&greeter_key()).await.unwrap();
    assert!(
        listed.iter().any(|i| i.address() == target),
        "the disabled provider's own node must stay registered: {listed:?}"
    );

    store
        .edit_overrides(&greeter_key(), |o| {
            o.address_mut(&target).disabled = false;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("enable: {e}"));
    let enabled = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "calls reaching the enabled provider",
        || {
            let back = load.reached_since(&target, enabled) > 0;
            async move { back }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let answers = load.finish().await;
    let failed: Vec<&String> = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().err())
        .collect();
    println!("{} calls, {} failed", answers.len(), failed.len());
    assert!(
        failed.is_empty(),
        "failed calls: {:?}",
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_disabling_one_of_three_under_load_fails_no_call_and_stops_its_share_within_100ms() {
    let etcd = EtcdServer::start().await;
    disable_under_load(&etcd.registry_url("")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_disabling_one_of_three_under_load_fails_no_call_and_stops_its_share_within_100ms(
) {
    let zk = ZookeeperServer::start().await;
    disable_under_load(&zk.registry_url("")).await;
}

async fn shares(greeter: &GreeterClient, calls: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..calls {
        let who = greeter
            .whoami()
            .await
            .unwrap_or_else(|e| panic!("whoami: {e}"));
        *counts.entry(who).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| (k, n as f64 / calls as f64))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_three_one_one_set_at_run_time_move_weighted_balancers_to_those_shares() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers = providers(&url, &[&[], &[], &[]]).await;
    let addrs = addresses(&providers);
    let store = GovernanceStore::new(connect(&url).await);
    store
        .edit_overrides(&greeter_key(), |o| {
            for (addr, weight) in addrs.iter().zip([3, 1, 1]) {
                o.address_mut(addr).weight = Some(weight);
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("weights: {e}"));
    for balancer in ["weighted-random", "weighted-round-robin"] {
        let config = ClusterConfig::default().balancer_named(balancer).unwrap();
        let consumer = client(&url, config).await;
        wait_listed(&consumer, &greeter_key(), &addrs, LISTED).await;
        let shares = shares(&GreeterClient::new(consumer), 3_000).await;
        println!("{balancer} 3:1:1: {shares:?}");
        for (addr, expected) in addrs.iter().zip([0.6, 0.2, 0.2]) {
            let got = shares.get(addr).copied().unwrap_or(0.0);
            assert!(
                (got - expected).abs() <= 0.05,
                "{balancer}: {addr} got {:.1}%, expected {:.0}% ± 5%",
                got * 100.0,
                expected * 100.0
            );
        }
    }
}

/// Who answers `calls` whoami calls.
async fn answered_by(consumer: &Client, calls: usize) -> Result<BTreeMap<String, usize>, RpcError> {
    let greeter = GreeterClient::new(consumer.clone());
    let mut counts = BTreeMap::new();
    for _ in 0..calls {
        *counts.entry(greeter.whoami().await?).or_default() += 1;
    }
    Ok(counts)
}

fn only(counts: &BTreeMap<String, usize>, allowed: &[String]) -> bool {
    !counts.is_empty() && counts.keys().all(|who| allowed.contains(who))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gray_release_routes_tagged_calls_to_gray_providers_and_falls_back_unless_forced() {
    let zk = ZookeeperServer::start().await;
    let url = zk.registry_url("");
    let mut gray = providers(&url, &[&["--tag", "gray"], &["--tag", "gray"]]).await;
    let plain = providers(&url, &[&[], &[]]).await;
    let (gray_addrs, plain_addrs) = (addresses(&gray), addresses(&plain));
    let all: Vec<String> = gray_addrs.iter().chain(&plain_addrs).cloned().collect();
    let tagged = client(&url, ClusterConfig::default().tag(Some("gray".into()))).await;
    let untagged = client(&url, ClusterConfig::default()).await;
    wait_listed(&tagged, &greeter_key(), &all, LISTED).await;
    wait_listed(&untagged, &greeter_key(), &all, LISTED).await;

    let by_tagged = answered_by(&tagged, 200).await.unwrap();
    assert!(
        only(&by_tagged, &gray_addrs),
        "tagged calls reached {by_tagged:?}"
    );
    assert_eq!(
        by_tagged.len(),
        2,
        "both gray providers serve: {by_tagged:?}"
    );
    let by_untagged = answered_by(&untagged, 200).await.unwrap();
    assert!(
        only(&by_untagged, &plain_addrs),
        "untagged calls reached {by_untagged:?}"
    );

    for provider in &mut gray {
        assert!(provider.terminate_async(Duration::from_secs(15)).await);
    }
    wait_listed(&tagged, &greeter_key(), &plain_addrs, LISTED).await;
    let fallen_back = answered_by(&tagged, 100).await.unwrap();
    assert!(
        only(&fallen_back, &plain_addrs),
        "with no gray provider, tagged calls fall back to untagged ones: {fallen_back:?}"
    );

    let store = GovernanceStore::new(connect(&url).await);
    let forced: Routes =
        Routes::parse(&json!({"version": 1, "tag": {"force": true}}).to_string()).unwrap();
    store.put_routes(&greeter_key(), &forced).await.unwrap();
    wait_until(LISTED, "the forcing rule in force", || {
        let on = in_force(&tagged, &greeter_key()).is_some_and(|g| g.routes().is_some());
        async move { on }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    match GreeterClient::new(tagged.clone()).whoami().await {
        Err(RpcError::NoProvider { .. }) => {}
        other => panic!("a forced tag with no provider must fail with NoProvider: {other:?}"),
    }
    let still = answered_by(&untagged, 50).await.unwrap();
    assert!(
        only(&still, &plain_addrs),
        "untagged calls unaffected: {still:?}"
    );
}

/// Calls each endpoint of `key` took on `consumer`, by address.
fn endpoint_calls(consumer: &Client, key: &ServiceKey) -> BTreeMap<String, u64> {
    let entry = consumer
        .directory()
        .and_then(|d| d.cached(key))
        .expect("the entry");
    entry
        .members()
        .endpoints()
        .iter()
        .map(|e| (e.addr().to_string(), e.calls()))
        .collect()
}

async fn rpcctl(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary("rpcctl"))
            .args(["--registry", url, "--json"])
            .args(args)
            .env_remove("RPC_REGISTRY")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("rpcctl finished within 60 s")
    .expect("rpcctl started");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn rpcctl_json(url: &str, args: &[&str]) -> Value {
    let (code, stdout, stderr) = rpcctl(url, args).await;
    assert_eq!(code, Some(0), "rpcctl {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_rule_sends_divide_only_to_zone_b_and_route_explain_names_the_same_set() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers = providers(
        &url,
        &[
            &["--meta", "zone=a"],
            &["--meta", "zone=b"],
            &["--meta", "zone=a"],
        ],
    )
    .await;
    let addrs = addresses(&providers);
    let key = calculator_key();
    let rules = json!({"version": 1, "conditions": [{
        "name": "divide-to-b",
        "when": {"method": {"exact": "divide"}},
        "then": {"metadata.zone": {"exact": "b"}},
    }]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.json");
    std::fs::write(&file, rules.to_string()).unwrap();
    let service = key.to_string();
    rpcctl_json(
        &url,
        &["route", "set", &service, "--file", &file.to_string_lossy()],
    )
    .await;

    let consumer = client(&url, ClusterConfig::default()).await;
    wait_listed(&consumer, &key, &addrs, LISTED).await;
    let calc = CalculatorClient::new(consumer.clone());
    for i in 1..=60 {
        assert_eq!(calc.divide(i * 2, 2).await.unwrap(), Ok(i));
    }
    let reached: Vec<String> = endpoint_calls(&consumer, &key)
        .into_iter()
        .filter(|(_, calls)| *calls > 0)
        .map(|(addr, _)| addr)
        .collect();
    assert_eq!(
        reached,
        vec![addrs[1].clone()],
        "divide reached {reached:?}"
    );

    let explained = rpcctl_json(&url, &["route", "explain", &service, "--method", "divide"]).await;
    assert_eq!(explained["reached"], json!(reached), "explain: {explained}");
    assert_eq!(explained["condition"]["rule"], "divide-to-b");

    for i in 0..60 {
        calc.add(i, 1).await.unwrap();
    }
    let after_add = endpoint_calls(&consumer, &key);
    assert!(
        addrs
            .iter()
            .all(|a| after_add.get(a).copied().unwrap_or(0) > 0),
        "add is not matched by the rule and reaches every provider: {after_add:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_document_written_by_hand_keeps_the_last_good_rules_and_rpcctl_refuses_it() {
    count_refused_warnings();
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers = providers(&url, &[&["--meta", "zone=a"], &["--meta", "zone=b"]]).await;
    let addrs = addresses(&providers);
    let key = greeter_key();
    let good = Routes::parse(
        &json!({"version": 1, "conditions": [{
            "name": "whoami-to-b",
            "when": {"method": {"exact": "whoami"}},
            "then": {"metadata.zone": {"exact": "b"}},
        }]})
        .to_string(),
    )
    .unwrap();
    GovernanceStore::new(connect(&url).await)
        .put_routes(&key, &good)
        .await
        .unwrap();
    let consumer = client(&url, ClusterConfig::default()).await;
    wait_listed(&consumer, &key, &addrs, LISTED).await;
    assert_eq!(
        in_force(&consumer, &key).and_then(|g| g.routes().cloned()),
        Some(good.clone())
    );

    let path = format!("/rpc/_governance/{key}/routes");
    let malformed = r#"{"version":1,"conditions":[{"name":"x","then":{"zone":{"exact":"b"}}}]}"#;
    etcd.etcdctl(&["put", &path, malformed]).await.unwrap();
    // The consumer sees the new version (it is watched) and keeps the last good one.
    holds_for(
        Duration::from_millis(500),
        "the last good rules in force",
        || {
            let kept =
                in_force(&consumer, &key).and_then(|g| g.routes().cloned()) == Some(good.clone());
            async move { kept }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let by = answered_by(&consumer, 50).await.unwrap();
    assert!(only(&by, &addrs[1..]), "the good rule still routes: {by:?}");
    // A new snapshot that still holds the bad text (here: the other document changed) is
    // not warned about again.
    let store = GovernanceStore::new(connect(&url).await);
    store
        .edit_overrides(&key, |o| {
            o.address_mut(&addrs[1]).weight = Some(50);
            Ok(())
        })
        .await
        .unwrap();
    wait_until(LISTED, "the new overrides in force", || {
        let on = in_force(&consumer, &key).is_some_and(|g| g.overrides().is_some());
        async move { on }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    wait_until(LISTED, "the refusal warning", || {
        let seen = REFUSED_WARNINGS.load(Ordering::SeqCst) > 0;
        async move { seen }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    holds_for(Duration::from_millis(500), "exactly one warning", || {
        let one = REFUSED_WARNINGS.load(Ordering::SeqCst) == 1;
        async move { one }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.json");
    std::fs::write(&file, malformed).unwrap();
    let (code, _, stderr) = rpcctl(
        &url,
        &[
            "route",
            "set",
            &key.to_string(),
            "--file",
            &file.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(
        code,
        Some(1),
        "rpcctl must refuse the malformed rules: {stderr}"
    );
    assert!(stderr.contains("conditions[0].then.zone"), "{stderr}");
    let stored = etcd
        .get(&path)
        .await
        .unwrap()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    assert_eq!(stored.as_deref(), Some(malformed), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_rpcctl_writes_it_reads_back_identically_and_the_consumer_applies() {
    let zk = ZookeeperServer::start().await;
    let url = zk.registry_url("");
    let providers = providers(&url, &[&[], &[]]).await;
    let addrs = addresses(&providers);
    let key = greeter_key();
    let service = key.to_string();
    let consumer = client(&url, ClusterConfig::default()).await;
    wait_listed(&consumer, &key, &addrs, LISTED).await;

    rpcctl_json(&url, &["weight", &service, &addrs[0], "7"]).await;
    rpcctl_json(&url, &["disable", &service, &addrs[1]]).await;
    let written = rpcctl_json(
        &url,
        &[
            "config",
            "set",
            &service,
            "max_attempts=2",
            "balancer=weighted-random",
        ],
    )
    .await;
    let read = rpcctl_json(&url, &["config", "get", &service]).await;
    assert_eq!(read, written, "read back identically");
    let overrides: Overrides = serde_json::from_value(read["overrides"].clone())
        .unwrap_or_else(|e| panic!("overrides in {read}: {e}"));

    wait_until(LISTED, "the consumer applying what rpcctl wrote", || {
        let applied = in_force(&consumer, &key).and_then(|g| g.overrides().cloned());
        let same = applied.as_ref() == Some(&overrides);
        async move { same }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let by = answered_by(&consumer, 50).await.unwrap();
    assert!(
        only(&by, &addrs[..1]),
        "the disabled provider gets no call: {by:?}"
    );
    let members = consumer
        .directory()
        .and_then(|d| d.cached(&key))
        .unwrap()
        .members();
    let weight = members
        .endpoints()
        .iter()
        .find(|e| e.addr().to_string() == addrs[0])
        .map(|e| e.weight());
    assert_eq!(weight, Some(7), "the weight override is applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_follows_the_chain_consumer_to_relay_to_the_gray_greeter() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let gray = providers(&url, &[&["--tag", "gray"]]).await;
    let plain = providers(&url, &[&[]]).await;
    let relay = providers(&url, &[&["--relay"]]).await;
    let greeters: Vec<String> = addresses(&gray)
        .into_iter()
        .chain(addresses(&plain))
        .collect();
    let relay_key = ServiceKey::new("example.Relay", "1.0.0");
    let tagged = client(&url, ClusterConfig::default().tag(Some("gray".into()))).await;
    wait_listed(&tagged, &relay_key, &addresses(&relay), LISTED).await;
    // The relay itself is untagged: the tagged call falls back to it, and its own call to a
    // Greeter inherits the tag.
    let watcher = client(&url, ClusterConfig::default()).await;
    wait_listed(&watcher, &greeter_key(), &greeters, LISTED).await;
    let relay_stub = RelayClient::new(tagged);
    for _ in 0..20 {
        let reached = relay_stub.downstream().await.unwrap().unwrap();
        assert_eq!(
            reached,
            gray[0].address(),
            "the tagged chain must end at the gray greeter"
        );
    }
    let untagged = RelayClient::new(client(&url, ClusterConfig::default()).await);
    for _ in 0..20 {
        let reached = untagged.downstream().await.unwrap().unwrap();
        assert_eq!(
            reached,
            plain[0].address(),
            "an untagged chain ends at the untagged greeter"
        );
    }
}
