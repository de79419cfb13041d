//! The etcd backend on a real etcd (one per test, on free ports): the conformance suite, then
//! the etcd-specific behaviours: one lease per client, nodes deleted or leases revoked by
//! hand come back, recovery from a wiped etcd, watches across restarts, errors that name
//! the endpoint. Failover in a cluster is in `registry_etcd_cluster.rs`.
//!
//! Expiry-related tests use `ttl=2`, so the heartbeat is 2/3 s. The provider-process tests
//! (SIGKILLed provider disappears within TTL + 2 s; consumer keeps calling while etcd is
//! down) need the example binaries and live with the end-to-end tests.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rpc_core::registry::{Registry, ServiceInstance, ServiceKey, WatchEvent};
use rpc_registry::{EtcdRegistry, RegistryUrl};
use tests::etcd::{EtcdBackend, EtcdServer};
use tests::wait::{holds_for, next_event, wait_until, watch_until};

tests::conformance_tests!(EtcdBackend::start("").await);
tests::governance_conformance_tests!(EtcdBackend::start("").await);

/// The lease TTL of the expiry tests (`ttl=2`).
const TTL: Duration = Duration::from_secs(2);

/// The heartbeat with `ttl=2`.
const HEARTBEAT: Duration = Duration::from_millis(667);

/// Slack on top of the contract's bounds: these tests share 2 cores with a parallel build
/// and other tests, so a process may wait its turn for a while. The contract bound is what
/// the test prints; the assert allows the slack.
const SLACK: Duration = Duration::from_secs(2);

/// How long a test waits for things with no contract bound (a watch event, say).
const WAIT: Duration = Duration::from_secs(10);

async fn etcd_registry(url: &str) -> Arc<EtcdRegistry> {
    let parsed = RegistryUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    Arc::new(
        EtcdRegistry::connect(parsed)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}")),
    )
}

async fn registry(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

fn instance(name: &str, port: u16) -> ServiceInstance {
    ServiceInstance::new(&ServiceKey::new(name, "1.0.0"), "127.0.0.1", port)
}

fn path(instance: &ServiceInstance) -> String {
    format!("/rpc/{}/{}", instance.key(), instance.address())
}

/// Whether discover shows exactly `expected` (by address) for every key involved.
async fn all_present(consumer: &dyn Registry, expected: &[ServiceInstance]) -> bool {
    let mut keys: Vec<ServiceKey> = expected.iter().map(ServiceInstance::key).collect();
    keys.dedup();
    for key in keys {
        let want: Vec<String> = expected
            .iter()
            .filter(|i| i.key() == key)
            .map(ServiceInstance::address)
            .collect();
        match consumer.discover(&key).await {
            Ok(found) => {
                let mut got: Vec<String> = found.iter().map(ServiceInstance::address).collect();
                let mut want = want.clone();
                got.sort();
                want.sort();
                if got != want {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_deleted_by_hand_comes_back_within_a_heartbeat() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let provider = etcd_registry(&etcd.registry_url("ttl=2")).await;
    let inst = instance("etcd.Deleted", 21_001);
    provider.register(&inst).await.expect("register");
    let before = etcd
        .get(&path(&inst))
        .await
        .expect("get")
        .expect("node exists");

    let out = etcd
        .etcdctl(&["del", &path(&inst)])
        .await
        .expect("etcdctl del");
    assert_eq!(out.trim(), "1", "etcdctl del removed nothing");
    let took = wait_until(
        HEARTBEAT + SLACK,
        "the deleted node to come back",
        || async { etcd.get(&path(&inst)).await.ok().flatten().is_some() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("node deleted by hand came back after {took:?} (heartbeat {HEARTBEAT:?})");
    let after = etcd
        .get(&path(&inst))
        .await
        .expect("get")
        .expect("node exists");
    assert_eq!(after, before, "the node came back with other data");
    let leases = etcd.leases().await.expect("lease list");
    let lease = provider.lease_id().expect("a live lease");
    assert_eq!(
        leases,
        vec![lease],
        "the node must come back on the same lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_return_after_etcd_is_wiped_and_restarted() {
    tests::logging::init();
    let mut etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let provider = etcd_registry(&url).await;
    let consumer = registry(&url).await;
    let instances = [
        instance("etcd.Wiped", 21_011),
        instance("etcd.Wiped", 21_012),
        instance("etcd.WipedToo", 21_011),
    ];
    for inst in &instances {
        provider.register(inst).await.expect("register");
    }
    assert!(all_present(&*consumer, &instances).await);
    let old_lease = provider.lease_id().expect("a live lease");

    etcd.stop();
    etcd.wipe_data();
    etcd.start_again().await;
    // The contract: back within 2 heartbeats of etcd being up; plus slack for 2 busy cores.
    let took = wait_until(
        2 * HEARTBEAT + SLACK,
        "every instance to be re-registered",
        || all_present(&*consumer, &instances),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "all instances back {took:?} after etcd came up (2 heartbeats = {:?})",
        2 * HEARTBEAT
    );

    let new_lease = provider.lease_id().expect("a live lease after recovery");
    assert_ne!(
        new_lease, old_lease,
        "a wiped etcd cannot know the old lease"
    );
    one_lease_soon(&etcd, &provider).await;
}

/// Waits until etcd holds exactly one lease, the provider's. A grant whose answer timed out
/// (on busy cores) may leave a second lease behind for one TTL, never longer.
async fn one_lease_soon(etcd: &EtcdServer, provider: &EtcdRegistry) {
    wait_until(TTL + SLACK, "exactly one lease, the provider's", || async {
        let Some(lease) = provider.lease_id() else {
            return false;
        };
        etcd.leases().await.ok() == Some(vec![lease])
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_revoked_by_hand_is_replaced_and_instances_return() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let provider = etcd_registry(&url).await;
    let consumer = registry(&url).await;
    let instances = [
        instance("etcd.Revoked", 21_021),
        instance("etcd.Revoked", 21_022),
    ];
    for inst in &instances {
        provider.register(inst).await.expect("register");
    }
    let old_lease = provider.lease_id().expect("a live lease");

    etcd.etcdctl(&["lease", "revoke", &format!("{old_lease:x}")])
        .await
        .expect("etcdctl lease revoke");
    assert!(
        !all_present(&*consumer, &instances).await,
        "revoking the lease must delete its nodes"
    );
    let took = wait_until(HEARTBEAT + SLACK, "the instances to come back", || {
        all_present(&*consumer, &instances)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("instances back {took:?} after the lease was revoked");
    let new_lease = provider.lease_id().expect("a live lease");
    assert_ne!(new_lease, old_lease);
    one_lease_soon(&etcd, &provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_one_lease_in_steady_state() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let provider = etcd_registry(&etcd.registry_url("ttl=2")).await;
    let mut first = instance("etcd.Steady", 21_031);
    for inst in [
        &first,
        &instance("etcd.Steady", 21_032),
        &instance("etcd.SteadyToo", 21_031),
    ] {
        provider.register(inst).await.expect("register");
    }
    first.weight = 5;
    provider
        .register(&first)
        .await
        .expect("re-register with a new weight");
    let lease = provider.lease_id().expect("a live lease");
    let expected = vec![lease];

    // Five heartbeats, longer than the TTL: the lease must be kept alive, never replaced.
    holds_for(
        5 * HEARTBEAT,
        "exactly one lease, the provider's",
        || async { etcd.leases().await.ok().as_ref() == Some(&expected) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(provider.lease_id(), Some(lease), "the lease was replaced");
    let value = etcd
        .get(&path(&first))
        .await
        .expect("get")
        .expect("node exists");
    let parsed = ServiceInstance::from_json(&value).expect("layout JSON");
    assert_eq!(parsed.weight, 5, "the node carries the current data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_disconnect_and_resumes_after_restart() {
    tests::logging::init();
    let mut etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    let provider = registry(&url).await;
    let consumer = registry(&url).await;
    let a = instance("etcd.Restarted", 21_041);
    let b = instance("etcd.Restarted", 21_042);
    let mut watch = consumer.watch(&a.key()).await.expect("watch");
    let first = next_event(&mut watch, WAIT).await.expect("first snapshot");
    assert_eq!(first, WatchEvent::Snapshot(vec![]));
    // Seeing a change proves the watch stream is established before etcd goes down.
    provider.register(&a).await.expect("register");
    watch_until(&mut watch, WAIT, "a", |list| list == [a.clone()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    etcd.stop();
    let stopped = std::time::Instant::now();
    loop {
        match next_event(&mut watch, WAIT)
            .await
            .expect("an event after etcd stopped")
        {
            WatchEvent::Disconnected { reason } => {
                println!("watch reported after {:?}: {reason}", stopped.elapsed());
                break;
            }
            WatchEvent::Snapshot(list) => assert_eq!(list, vec![a.clone()]),
        }
    }
    etcd.start_again().await;
    provider.register(&b).await.expect("register after restart");
    let seen = watch_until(&mut watch, WAIT, "both instances", |list| list.len() == 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        seen.iter()
            .all(|e| !matches!(e, WatchEvent::Disconnected { .. })),
        "one Disconnected per outage, not one per retry: {seen:?}"
    );

    // Dropping the stream stops the watch task; the registry goes on working.
    drop(watch);
    assert_eq!(
        consumer.discover(&a.key()).await.expect("discover").len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_registry_and_the_endpoint() {
    tests::logging::init();
    let port = tests::net::free_port();
    let url = format!("etcd://127.0.0.1:{port}?connect_timeout=0.5&request_timeout=1");
    let reg = registry(&url).await;
    let err = reg
        .discover(&ServiceKey::new("etcd.Nobody", "1.0.0"))
        .await
        .expect_err("nothing listens there")
        .to_string();
    for needle in ["etcd", &format!("127.0.0.1:{port}"), "etcd.Nobody:1.0.0"] {
        assert!(err.contains(needle), "error {err:?} lacks {needle:?}");
    }
    let err = reg
        .register(&instance("etcd.Nobody", 21_051))
        .await
        .expect_err("nothing listens there")
        .to_string();
    assert!(
        err.contains("etcd") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    reg.shutdown()
        .await
        .expect("shutdown with nothing registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_or_drop_ends_watch_streams() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let key = ServiceKey::new("etcd.Ended", "1.0.0");
    for shut_down in [true, false] {
        let consumer = registry(&etcd.registry_url("")).await;
        let mut watch = consumer.watch(&key).await.expect("watch");
        assert_eq!(
            next_event(&mut watch, WAIT).await.expect("first"),
            WatchEvent::Snapshot(vec![])
        );
        if shut_down {
            consumer.shutdown().await.expect("shutdown");
        } else {
            drop(consumer);
        }
        let end = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("the stream ends");
        assert_eq!(end, None, "the stream must end (shut down: {shut_down})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_overwritten_by_hand_is_put_back_on_the_lease() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let provider = etcd_registry(&etcd.registry_url("ttl=2")).await;
    let inst = instance("etcd.Overwritten", 21_051);
    provider.register(&inst).await.expect("register");
    let ours = etcd.get(&path(&inst)).await.expect("get").expect("node");
    etcd.etcdctl(&[
        "put",
        "--",
        &path(&inst),
        r#"{"service":"etcd.Overwritten","version":"1.0.0","host":"10.9.9.9","port":1}"#,
    ])
    .await
    .expect("etcdctl put");
    let took = wait_until(HEARTBEAT + SLACK, "our value to come back", || async {
        etcd.get(&path(&inst)).await.ok().flatten().as_ref() == Some(&ours)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("overwritten node put back after {took:?}");
    let leases = etcd.leases().await.expect("lease list");
    assert_eq!(leases, vec![provider.lease_id().expect("a live lease")]);
}

#[tokio::test]
async fn a_ttl_below_etcds_minimum_is_raised_to_it() {
    let etcd = EtcdServer::start().await;
    let provider = etcd_registry(&etcd.registry_url("ttl=1")).await;
    assert_eq!(provider.options().ttl, Duration::from_secs(2));
}

/// Every own node is put again when a lease starts (the first, or one replacing a revoked
/// lease). A register of a newer value made meanwhile must win: the re-put never lands the
/// older value over it (seen once in CI as a watch going back from weight 7 to 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_put_on_a_new_lease_never_lands_an_older_value_over_a_newer_register() {
    tests::logging::init();
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=2");
    const ROUNDS: u16 = 8;
    const PER_ROUND: u16 = 4;
    const LAST: u32 = 6;
    let mut providers = Vec::new();
    let mut nodes = Vec::new();
    // Registers right after connect race the first lease's re-put of every node; several
    // nodes at once keep several claim transactions in flight.
    for round in 0..ROUNDS {
        let provider = etcd_registry(&url).await;
        let updates = (0..PER_ROUND).map(|n| {
            let provider = Arc::clone(&provider);
            async move {
                let port = 21_100 + round * PER_ROUND + n;
                let mut inst = instance(&format!("etcd.RePut{round}"), port);
                for weight in 1..=LAST {
                    inst.weight = weight;
                    provider.register(&inst).await.expect("register");
                }
                inst
            }
        });
        nodes.extend(futures::future::join_all(updates).await);
        providers.push(provider);
    }
    let paths: Vec<String> = nodes.iter().map(path).collect();
    let last_values = |expected: u32| {
        let etcd = &etcd;
        let paths = &paths;
        move || async move {
            for node in paths {
                let stored = etcd.get(node).await.ok().flatten();
                let weight = stored
                    .and_then(|v| ServiceInstance::from_json(&v).ok())
                    .map(|i| i.weight);
                if weight != Some(expected) {
                    return false;
                }
            }
            true
        }
    };
    holds_for(
        HEARTBEAT,
        "every node keeps its last registered weight",
        last_values(LAST),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Revoked leases: each provider re-puts its node on a new lease while it is updated.
    for provider in &providers {
        let lease = provider.lease_id().expect("a live lease");
        etcd.etcdctl(&["lease", "revoke", &format!("{lease:x}")])
            .await
            .expect("etcdctl lease revoke");
    }
    let per_provider = nodes.chunks_mut(usize::from(PER_ROUND));
    for (provider, chunk) in providers.iter().zip(per_provider) {
        for inst in chunk {
            inst.weight = LAST + 1;
            provider
                .register(inst)
                .await
                .expect("register on the new lease");
        }
    }
    wait_until(
        WAIT,
        "every node back with its newest weight",
        last_values(LAST + 1),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    holds_for(
        HEARTBEAT,
        "every node keeps its newest weight",
        last_values(LAST + 1),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
