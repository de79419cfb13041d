//! The backend conformance suite: the behaviour every [`Registry`] backend must have, written
//! once and run against each backend (memory and etcd now, ZooKeeper later).
//!
//! A backend plugs in by implementing [`Backend`]; [`conformance_tests!`](crate::conformance_tests)
//! then makes one `#[tokio::test]` per case:
//!
//! ```text
//! tests::conformance_tests!(tests::memory::MemoryBackend::new());
//! tests::conformance_tests!(tests::etcd::EtcdBackend::start("").await);
//! ```
//!
//! Every case uses service names of its own, so cases may share a server. Each panics with a
//! message saying what was expected and what was seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rpc_core::registry::{Registry, ServiceInstance, ServiceKey, WatchEvent};

use crate::wait::{addresses, next_event, watch_until};

pub use crate::conformance_documents::{
    governance_documents_are_watched, governance_documents_persist_at_the_contract_path,
};

/// How long a case waits for something that should happen at once (a watch event, say).
pub const WAIT: Duration = Duration::from_secs(10);

/// The layout root every backend uses in the suite.
pub const ROOT: &str = "/rpc";

/// A registry backend under test: how to connect clients to one registry, and how to read
/// and write its raw nodes the way an outside tool would.
pub trait Backend: Send + Sync {
    /// The backend's name, for messages.
    fn name(&self) -> &'static str;

    /// A new client on the registry under test (as another process would have), using the
    /// layout root [`ROOT`].
    fn connect(&self) -> BoxFuture<'_, Arc<dyn Registry>>;

    /// Writes a raw node at `path` (creating parents as the backend needs), as a tool would.
    fn put_raw<'a>(&'a self, path: &'a str, value: &'a [u8]) -> BoxFuture<'a, ()>;

    /// Reads a raw node's value, as a tool would; `None` when absent.
    fn get_raw<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<Vec<u8>>>;

    /// How often a client refreshes its registration (keep-alive, self-check); zero for a
    /// backend without one. Checks that must survive a refresh hold for two of them.
    fn heartbeat(&self) -> Duration {
        Duration::ZERO
    }
}

/// The heartbeat a registry URL's `query` gives: `heartbeat=` seconds, else a third of
/// `ttl=` seconds, else a third of the default 30 s TTL.
pub fn heartbeat_of(query: &str) -> Duration {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .and_then(|(_, value)| value.parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs > 0.0)
            .map(Duration::from_secs_f64)
    };
    param("heartbeat").unwrap_or_else(|| param("ttl").unwrap_or(Duration::from_secs(30)) / 3)
}

/// The case names, in the order [`conformance_tests!`](crate::conformance_tests) runs them.
pub const CASES: &[&str] = &[
    "register_discover_deregister",
    "versions_are_kept_apart",
    "watch_sees_add_update_remove_in_order",
    "stored_values_carry_every_layout_field",
    "bad_values_are_skipped",
    "shutdown_removes_everything",
];

/// The governance-document cases, in the order
/// [`governance_conformance_tests!`](crate::governance_conformance_tests) runs them.
pub const GOVERNANCE_CASES: &[&str] = &[
    "governance_documents_persist_at_the_contract_path",
    "governance_documents_are_watched",
];

/// Makes one `#[tokio::test]` per conformance case. The argument is an expression, evaluated
/// afresh in each test (inside an async fn, so it may `.await`), that gives a value
/// implementing [`Backend`].
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@case $backend, register_discover_deregister);
        $crate::conformance_tests!(@case $backend, versions_are_kept_apart);
        $crate::conformance_tests!(@case $backend, watch_sees_add_update_remove_in_order);
        $crate::conformance_tests!(@case $backend, stored_values_carry_every_layout_field);
        $crate::conformance_tests!(@case $backend, bad_values_are_skipped);
        $crate::conformance_tests!(@case $backend, shutdown_removes_everything);
    };
    (@case $backend:expr, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            $crate::logging::init();
            let backend = $backend;
            $crate::conformance::$case(&backend).await;
        }
    };
}

/// Makes one `#[tokio::test]` per governance-document case ([`GOVERNANCE_CASES`]), for the
/// backends that store governance documents (docs/governance.md).
#[macro_export]
macro_rules! governance_conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@case $backend, governance_documents_persist_at_the_contract_path);
        $crate::conformance_tests!(@case $backend, governance_documents_are_watched);
    };
}

/// A service name no other case (or run) uses.
pub(crate) fn unique_service(case: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "conformance.{case}.p{}n{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn instance(key: &ServiceKey, host: &str, port: u16) -> ServiceInstance {
    ServiceInstance::new(key, host, port)
}

/// `<root>/<name>:<version>/<host>:<port>`, the contract's node path.
fn node_path(instance: &ServiceInstance) -> String {
    format!("{ROOT}/{}/{}", instance.key(), instance.address())
}

async fn discover(
    backend: &dyn Backend,
    registry: &dyn Registry,
    key: &ServiceKey,
) -> Vec<ServiceInstance> {
    registry
        .discover(key)
        .await
        .unwrap_or_else(|e| panic!("[{}] discover {key}: {e}", backend.name()))
}

async fn register(backend: &dyn Backend, registry: &dyn Registry, instance: &ServiceInstance) {
    registry
        .register(instance)
        .await
        .unwrap_or_else(|e| panic!("[{}] register {}: {e}", backend.name(), node_path(instance)));
}

async fn deregister(backend: &dyn Backend, registry: &dyn Registry, instance: &ServiceInstance) {
    registry.deregister(instance).await.unwrap_or_else(|e| {
        panic!(
            "[{}] deregister {}: {e}",
            backend.name(),
            node_path(instance)
        )
    });
}

async fn services(backend: &dyn Backend, registry: &dyn Registry) -> Vec<ServiceKey> {
    registry
        .services()
        .await
        .unwrap_or_else(|e| panic!("[{}] services: {e}", backend.name()))
}

/// Compares instance lists whatever their order.
fn same(a: &[ServiceInstance], b: &[ServiceInstance]) -> bool {
    let key = |i: &ServiceInstance| i.address();
    let a: BTreeMap<String, &ServiceInstance> = a.iter().map(|i| (key(i), i)).collect();
    let b: BTreeMap<String, &ServiceInstance> = b.iter().map(|i| (key(i), i)).collect();
    a == b
}

/// Registering makes an instance discoverable by other clients; deregistering removes it.
pub async fn register_discover_deregister(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let consumer = backend.connect().await;
    let key = ServiceKey::new(unique_service("rdd"), "1.0.0");
    let a = instance(&key, "127.0.0.1", 20_001);
    let b = instance(&key, "127.0.0.1", 20_002);

    assert!(
        discover(backend, &*consumer, &key).await.is_empty(),
        "[{name}] a new key has instances"
    );
    register(backend, &*provider, &a).await;
    register(backend, &*provider, &b).await;
    let found = discover(backend, &*consumer, &key).await;
    assert!(
        same(&found, &[a.clone(), b.clone()]),
        "[{name}] discover after register: {found:?}"
    );
    assert!(
        services(backend, &*consumer).await.contains(&key),
        "[{name}] services() lacks {key}"
    );

    deregister(backend, &*provider, &a).await;
    // It stays gone while the provider's registration of `b` is refreshed, twice.
    let refreshes = backend.heartbeat() * 2 + Duration::from_millis(250);
    crate::wait::holds_for(refreshes, "the deregistered node to stay gone", || async {
        let found = discover(backend, &*consumer, &key).await;
        same(&found, std::slice::from_ref(&b))
    })
    .await
    .unwrap_or_else(|e| {
        panic!("[{name}] {e}: discover after one deregister lists more than {b:?}")
    });
    deregister(backend, &*provider, &b).await;
    let found = discover(backend, &*consumer, &key).await;
    assert!(
        found.is_empty(),
        "[{name}] discover after deregistering all: {found:?}"
    );
    assert!(
        !services(backend, &*consumer).await.contains(&key),
        "[{name}] services() still lists {key} with no instances"
    );

    register(backend, &*provider, &a).await;
    let found = discover(backend, &*consumer, &key).await;
    assert!(
        same(&found, std::slice::from_ref(&a)),
        "[{name}] register after deregister: {found:?}"
    );
    close(name, &*provider).await;
    close(name, &*consumer).await;
}

/// Two versions of one service are separate keys, even at the same address.
pub async fn versions_are_kept_apart(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let consumer = backend.connect().await;
    let service = unique_service("versions");
    let v1 = ServiceKey::new(service.clone(), "1.0.0");
    let v2 = ServiceKey::new(service.clone(), "2.0.0");
    let v1_a = instance(&v1, "127.0.0.1", 20_011);
    let v2_a = instance(&v2, "127.0.0.1", 20_011);
    let v2_b = instance(&v2, "127.0.0.1", 20_012);
    for i in [&v1_a, &v2_a, &v2_b] {
        register(backend, &*provider, i).await;
    }

    let found = discover(backend, &*consumer, &v1).await;
    assert!(
        same(&found, std::slice::from_ref(&v1_a)),
        "[{name}] {v1}: {found:?}"
    );
    let found = discover(backend, &*consumer, &v2).await;
    assert!(
        same(&found, &[v2_a.clone(), v2_b.clone()]),
        "[{name}] {v2}: {found:?}"
    );
    let keys = services(backend, &*consumer).await;
    assert!(
        keys.contains(&v1) && keys.contains(&v2),
        "[{name}] services(): {keys:?}"
    );

    let mut watch = consumer
        .watch(&v1)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch {v1}: {e}"));
    let first = next_event(&mut watch, WAIT)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch {v1}: {e}"));
    assert_eq!(
        first,
        WatchEvent::Snapshot(vec![v1_a.clone()]),
        "[{name}] first snapshot of {v1}"
    );

    deregister(backend, &*provider, &v2_a).await;
    let found = discover(backend, &*consumer, &v1).await;
    assert!(
        same(&found, std::slice::from_ref(&v1_a)),
        "[{name}] {v1} after removing {v2} at the same address: {found:?}"
    );
    let found = discover(backend, &*consumer, &v2).await;
    assert!(
        same(&found, std::slice::from_ref(&v2_b)),
        "[{name}] {v2}: {found:?}"
    );
    close(name, &*provider).await;
    close(name, &*consumer).await;
}

/// A watch delivers the current (empty) list, then the added instance, then its new weight,
/// then the empty list again, in that order, and nothing out of order in between.
pub async fn watch_sees_add_update_remove_in_order(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let consumer = backend.connect().await;
    let key = ServiceKey::new(unique_service("watch"), "1.0.0");
    let added = instance(&key, "127.0.0.1", 20_021);
    let mut updated = added.clone();
    updated.weight = 7;

    let mut watch = consumer
        .watch(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch {key}: {e}"));
    let first = next_event(&mut watch, WAIT)
        .await
        .unwrap_or_else(|e| panic!("[{name}] first snapshot: {e}"));
    assert_eq!(
        first,
        WatchEvent::Snapshot(vec![]),
        "[{name}] the first event must be the current (empty) snapshot"
    );

    let steps: [(&str, Vec<ServiceInstance>, Vec<ServiceInstance>); 3] = [
        ("add", vec![], vec![added.clone()]),
        ("update", vec![added.clone()], vec![updated.clone()]),
        ("remove", vec![updated.clone()], vec![]),
    ];
    for (step, before, after) in steps {
        match step {
            "add" => register(backend, &*provider, &added).await,
            "update" => register(backend, &*provider, &updated).await,
            _ => deregister(backend, &*provider, &updated).await,
        }
        let seen = watch_until(
            &mut watch,
            WAIT,
            &format!("the {step} snapshot {after:?}"),
            |list| same(list, &after),
        )
        .await
        .unwrap_or_else(|e| panic!("[{name}] {e}"));
        for event in &seen[..seen.len() - 1] {
            match event {
                WatchEvent::Snapshot(list) => assert!(
                    same(list, &before),
                    "[{name}] out of order before {step}: {list:?} (expected {before:?} or {after:?})"
                ),
                WatchEvent::Disconnected { reason } => {
                    panic!("[{name}] unexpected disconnect before {step}: {reason}")
                }
            }
        }
    }
    close(name, &*provider).await;
    close(name, &*consumer).await;
}

/// The stored value is the layout JSON of DESIGN.md, with every field, at the layout's path.
pub async fn stored_values_carry_every_layout_field(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let key = ServiceKey::new(unique_service("fields"), "3.1.4");
    let mut inst = instance(&key, "127.0.0.1", 20_031);
    inst.weight = 42;
    inst.metadata.insert("zone".into(), "eu-1".into());
    inst.metadata.insert("protocol".into(), "rp1".into());
    register(backend, &*provider, &inst).await;

    let path = node_path(&inst);
    let raw = backend
        .get_raw(&path)
        .await
        .unwrap_or_else(|| panic!("[{name}] no node at the layout path {path}"));
    let value: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_else(|e| {
        panic!(
            "[{name}] {path} is not JSON ({e}): {}",
            String::from_utf8_lossy(&raw)
        )
    });
    let expect = serde_json::json!({
        "service": key.name(),
        "version": "3.1.4",
        "host": "127.0.0.1",
        "port": 20_031,
        "weight": 42,
        "metadata": {"zone": "eu-1", "protocol": "rp1"},
        "registered_at_ms": inst.registered_at_ms,
    });
    for (field, expected) in expect.as_object().into_iter().flatten() {
        let got = value.get(field);
        assert_eq!(
            got,
            Some(expected),
            "[{name}] field {field:?} of {path}: {value}"
        );
    }
    assert!(
        value["registered_at_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 1_600_000_000_000),
        "[{name}] registered_at_ms is not a recent epoch time in ms: {value}"
    );
    close(name, &*provider).await;
}

/// Nodes that are not layout JSON, or sit at a path of the wrong shape, are skipped by
/// discover, watch and services; a valid node written by hand is a real instance.
pub async fn bad_values_are_skipped(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let consumer = backend.connect().await;
    let key = ServiceKey::new(unique_service("bad"), "1.0.0");
    let prefix = format!("{ROOT}/{key}");
    let good = instance(&key, "127.0.0.1", 20_041);
    let by_hand = instance(&key, "10.0.0.5", 20_045);
    let other = instance(&ServiceKey::new("someone.Else", "9"), "10.0.0.2", 20_042);

    backend
        .put_raw(&format!("{prefix}/10.0.0.1:20040"), b"not json")
        .await;
    backend
        .put_raw(
            &format!("{prefix}/10.0.0.2:20042"),
            other.to_json().as_bytes(),
        )
        .await;
    backend
        .put_raw(&format!("{prefix}/10.0.0.3:20043"), br#"{"service":"x"}"#)
        .await;
    backend
        .put_raw(&format!("{prefix}/no-port"), good.to_json().as_bytes())
        .await;
    let bad_key = format!("{ROOT}/{}-no-version/10.0.0.4:20044", unique_service("bad"));
    backend.put_raw(&bad_key, good.to_json().as_bytes()).await;
    register(backend, &*provider, &good).await;

    let found = discover(backend, &*consumer, &key).await;
    assert!(
        same(&found, std::slice::from_ref(&good)),
        "[{name}] discover must skip bad nodes: {found:?}"
    );
    let keys = services(backend, &*consumer).await;
    assert!(
        keys.contains(&key),
        "[{name}] services() lacks {key}: {keys:?}"
    );

    let mut watch = consumer
        .watch(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch {key}: {e}"));
    let first = next_event(&mut watch, WAIT)
        .await
        .unwrap_or_else(|e| panic!("[{name}] first snapshot: {e}"));
    assert_eq!(
        first,
        WatchEvent::Snapshot(vec![good.clone()]),
        "[{name}] watch must skip bad nodes"
    );

    let hand_path = node_path(&by_hand);
    backend
        .put_raw(&hand_path, by_hand.to_json().as_bytes())
        .await;
    watch_until(&mut watch, WAIT, "the hand-written instance", |list| {
        same(list, &[good.clone(), by_hand.clone()])
    })
    .await
    .unwrap_or_else(|e| panic!("[{name}] {e}"));
    let found = discover(backend, &*consumer, &key).await;
    assert_eq!(
        addresses(&found),
        addresses(&[good.clone(), by_hand.clone()]),
        "[{name}] discover"
    );

    backend.put_raw(&hand_path, b"{broken").await;
    watch_until(
        &mut watch,
        WAIT,
        "the hand-written node to drop out once its value is bad",
        |list| same(list, std::slice::from_ref(&good)),
    )
    .await
    .unwrap_or_else(|e| panic!("[{name}] {e}"));
    close(name, &*provider).await;
    close(name, &*consumer).await;
}

/// Shutdown removes every instance the client registered (and only those), watchers see it,
/// and the client refuses to register afterwards.
pub async fn shutdown_removes_everything(backend: &dyn Backend) {
    let name = backend.name();
    let provider = backend.connect().await;
    let neighbour = backend.connect().await;
    let consumer = backend.connect().await;
    let service = unique_service("shutdown");
    let key_a = ServiceKey::new(service.clone(), "1.0.0");
    let key_b = ServiceKey::new(service.clone(), "2.0.0");
    let a1 = instance(&key_a, "127.0.0.1", 20_051);
    let a2 = instance(&key_a, "127.0.0.1", 20_052);
    let b1 = instance(&key_b, "127.0.0.1", 20_051);
    let theirs = instance(&key_a, "127.0.0.1", 20_053);
    for i in [&a1, &a2, &b1] {
        register(backend, &*provider, i).await;
    }
    register(backend, &*neighbour, &theirs).await;

    let mut watch = consumer
        .watch(&key_a)
        .await
        .unwrap_or_else(|e| panic!("[{name}] watch {key_a}: {e}"));
    watch_until(&mut watch, WAIT, "all three instances of A", |list| {
        list.len() == 3
    })
    .await
    .unwrap_or_else(|e| panic!("[{name}] {e}"));

    close(name, &*provider).await;
    let found = discover(backend, &*consumer, &key_a).await;
    assert!(
        same(&found, std::slice::from_ref(&theirs)),
        "[{name}] {key_a} right after shutdown: {found:?}"
    );
    let found = discover(backend, &*consumer, &key_b).await;
    assert!(
        found.is_empty(),
        "[{name}] {key_b} right after shutdown: {found:?}"
    );
    assert!(
        !services(backend, &*consumer).await.contains(&key_b),
        "[{name}] services() still lists {key_b}"
    );
    watch_until(&mut watch, WAIT, "only the neighbour's instance", |list| {
        same(list, std::slice::from_ref(&theirs))
    })
    .await
    .unwrap_or_else(|e| panic!("[{name}] {e}"));
    assert!(
        provider.register(&a1).await.is_err(),
        "[{name}] register after shutdown must fail"
    );
    close(name, &*neighbour).await;
    close(name, &*consumer).await;
}

/// Shuts a client down, failing the case (named `name`) if that errs.
pub(crate) async fn close(name: &str, registry: &dyn Registry) {
    registry
        .shutdown()
        .await
        .unwrap_or_else(|e| panic!("[{name}] shutdown: {e}"));
}
