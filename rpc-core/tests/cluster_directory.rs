//! The consumer-side Directory over a fixture registry: single flight, watch propagation,
//! staleness while the registry is down, the snapshot file, empty protection.

mod cluster_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{dead_addr, echo_key, eventually, instance, FixtureRegistry};
use rpc_core::cluster::{Directory, DirectoryConfig};
use rpc_core::{Registry, ServiceInstance};

const WAIT: Duration = Duration::from_secs(5);

fn some_instances(n: usize) -> Vec<ServiceInstance> {
    (0..n).map(|_| instance(dead_addr())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_cold_lookups_make_one_registry_request() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), some_instances(3));
    // Slow answers keep every lookup waiting on the same first request.
    registry.set_watch_delay(Duration::from_millis(100));
    let directory = Arc::new(Directory::new(registry.clone()));
    let lookups: Vec<_> = (0..10_000)
        .map(|_| {
            let directory = Arc::clone(&directory);
            tokio::spawn(async move { directory.service(&echo_key()).await })
        })
        .collect();
    for lookup in lookups {
        let entry = lookup.await.expect("task").expect("lookup");
        assert_eq!(entry.instances().len(), 3);
    }
    assert_eq!(
        registry.requests(),
        1,
        "registry requests for 10,000 cold lookups"
    );
    // Warm lookups never touch the registry.
    directory.service(&echo_key()).await.expect("warm lookup");
    assert_eq!(registry.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_while_the_registry_is_down_make_one_request_and_fail() {
    let registry = FixtureRegistry::new();
    registry.set_up(false);
    registry.set_watch_delay(Duration::from_millis(50));
    let directory = Arc::new(Directory::new(registry.clone()));
    let lookups: Vec<_> = (0..1000)
        .map(|_| {
            let directory = Arc::clone(&directory);
            tokio::spawn(async move { directory.service(&echo_key()).await })
        })
        .collect();
    for lookup in lookups {
        let error = lookup.await.expect("task").expect_err("registry is down");
        assert!(error.to_string().contains("fixture"), "{error}");
    }
    assert_eq!(registry.requests(), 1);
    // A later lookup tries again, and succeeds once the registry is back.
    registry.set_up(true);
    registry.set(&echo_key(), some_instances(1));
    let entry = directory
        .service(&echo_key())
        .await
        .expect("registry is back");
    assert_eq!(entry.instances().len(), 1);
    assert_eq!(registry.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_event_reaches_readers() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), some_instances(2));
    let directory = Directory::new(registry.clone());
    let entry = directory.service(&echo_key()).await.expect("lookup");
    assert_eq!(entry.instances().len(), 2);
    assert_eq!(entry.members().endpoints().len(), 2);

    let next = some_instances(3);
    let before = entry.generation();
    let started = Instant::now();
    registry.set(&echo_key(), next.clone());
    // A reader polling the lock-free view, as the call path does.
    while *entry.instances() != next {
        assert!(started.elapsed() < WAIT, "the change never reached readers");
        tokio::task::yield_now().await;
    }
    let delay = started.elapsed();
    println!("directory: watch event reached readers after {delay:?}");
    assert_eq!(entry.members().endpoints().len(), 3);
    assert!(!entry.is_stale());
    // Waiters can also await the change instead of polling.
    let after = tokio::time::timeout(WAIT, entry.changed_since(before))
        .await
        .expect("changed_since returns once a newer snapshot is in");
    assert!(after > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_disconnected_and_the_last_list_is_kept() {
    let registry = FixtureRegistry::new();
    let list = some_instances(2);
    registry.set(&echo_key(), list.clone());
    let directory = Directory::new(registry.clone());
    let entry = directory.service(&echo_key()).await.expect("lookup");
    assert!(!entry.is_stale());

    registry.set_up(false);
    eventually(WAIT, "the entry to turn stale", || entry.is_stale()).await;
    assert_eq!(*entry.instances(), list, "the last known list stays in use");
    // Lookups still answer from the cache.
    let again = directory.service(&echo_key()).await.expect("cached lookup");
    assert_eq!(*again.instances(), list);

    let newer = some_instances(1);
    registry.set(&echo_key(), newer.clone());
    registry.set_up(true);
    eventually(WAIT, "the entry to be fresh again", || {
        !entry.is_stale() && *entry.instances() == newer
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_watch_is_re_established() {
    let registry = FixtureRegistry::new();
    let list = some_instances(2);
    registry.set(&echo_key(), list.clone());
    let directory = Directory::with_config(
        registry.clone(),
        DirectoryConfig {
            rewatch_backoff: rpc_core::backoff::Backoff::new(
                Duration::from_millis(10),
                Duration::from_millis(50),
            ),
            ..DirectoryConfig::default()
        },
    );
    let entry = directory.service(&echo_key()).await.expect("lookup");
    registry.set_up(false);
    registry.end_watches();
    eventually(WAIT, "the entry to turn stale", || entry.is_stale()).await;
    assert_eq!(*entry.instances(), list);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        registry.watch_calls() >= 2,
        "re-watch attempts continue while down"
    );
    registry.set_up(true);
    let newer = some_instances(3);
    registry.set(&echo_key(), newer.clone());
    eventually(WAIT, "the new watch to deliver", || {
        !entry.is_stale() && *entry.instances() == newer
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_file_lets_a_new_directory_start_with_the_registry_down() {
    let dir = std::env::temp_dir().join(format!(
        "rpc-core-cluster-snapshot-{}-{}",
        std::process::id(),
        rpc_core::registry::now_ms()
    ));
    let path = dir.join("providers.json");
    let config = DirectoryConfig {
        snapshot_file: Some(path.clone()),
        rewatch_backoff: rpc_core::backoff::Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(50),
        ),
        ..DirectoryConfig::default()
    };
    let registry = FixtureRegistry::new();
    let list = some_instances(2);
    registry.set(&echo_key(), list.clone());
    {
        let first = Directory::with_config(registry.clone(), config.clone());
        first.service(&echo_key()).await.expect("lookup");
        eventually(WAIT, "the snapshot file to hold the list", || {
            std::fs::read_to_string(&path)
                .map(|text| text.contains("test.Echo:1.0.0") && text.contains(&list[1].host))
                .unwrap_or(false)
        })
        .await;
    }
    let text = std::fs::read_to_string(&path).expect("snapshot file");
    let json: serde_json::Value = serde_json::from_str(&text).expect("snapshot file is JSON");
    assert_eq!(json["services"]["test.Echo:1.0.0"][0]["port"], list[0].port);

    // A new consumer while the registry is down.
    registry.set_up(false);
    let second = Directory::with_config(registry.clone(), config.clone());
    let entry = second
        .service(&echo_key())
        .await
        .expect("the file stands in");
    assert_eq!(*entry.instances(), list);
    assert!(entry.is_stale());
    assert_eq!(entry.members().endpoints().len(), 2);

    // The registry comes back: the watch is established and the list refreshed.
    let newer = some_instances(1);
    registry.set(&echo_key(), newer.clone());
    registry.set_up(true);
    eventually(WAIT, "the registry's list to replace the file's", || {
        !entry.is_stale() && *entry.instances() == newer
    })
    .await;

    // Without a file (or a list in it) the first lookup fails, naming the registry.
    registry.set_up(false);
    let bare = Directory::new(registry.clone());
    let error = bare.service(&echo_key()).await.expect_err("no fallback");
    assert!(error.to_string().contains("down"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_protection_keeps_the_last_list_when_on() {
    let registry = FixtureRegistry::new();
    let list = some_instances(2);
    registry.set(&echo_key(), list.clone());
    let directory = Directory::new(registry.clone());
    assert!(directory.config().empty_protection, "on by default");
    let entry = directory.service(&echo_key()).await.expect("lookup");

    registry.set(&echo_key(), Vec::new());
    eventually(WAIT, "empty protection to engage", || {
        entry.is_empty_protected()
    })
    .await;
    assert_eq!(*entry.instances(), list);

    // A real list again ends protection.
    let newer = some_instances(1);
    registry.set(&echo_key(), newer.clone());
    eventually(WAIT, "the new list", || *entry.instances() == newer).await;
    assert!(!entry.is_empty_protected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_protection_off_empties_the_list() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), some_instances(2));
    let directory = Directory::with_config(
        registry.clone(),
        DirectoryConfig {
            empty_protection: false,
            ..DirectoryConfig::default()
        },
    );
    let entry = directory.service(&echo_key()).await.expect("lookup");
    registry.set(&echo_key(), Vec::new());
    eventually(WAIT, "the list to empty", || entry.instances().is_empty()).await;
    assert!(entry.members().is_empty());
    assert!(!entry.is_empty_protected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_bad_addresses_are_skipped() {
    let registry = FixtureRegistry::new();
    let good = instance(dead_addr());
    let mut bad_host = good.clone();
    bad_host.host = "no such host!".to_string();
    let mut bad_port = good.clone();
    bad_port.host = "127.0.0.2".to_string();
    bad_port.port = 0;
    registry.set(&echo_key(), vec![bad_host, good.clone(), bad_port]);
    let directory = Directory::new(registry.clone());
    let entry = directory.service(&echo_key()).await.expect("lookup");
    let members = entry.members();
    assert_eq!(members.instances().len(), 3, "the raw list is kept");
    assert_eq!(members.endpoints().len(), 1);
    let endpoint = &members.endpoints()[0];
    assert_eq!(endpoint.addr().port(), good.port);
    assert_eq!(members.instance(endpoint), Some(&good));
    let _: &dyn Registry = registry.as_ref();
}
