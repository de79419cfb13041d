//! The ZooKeeper backend against a real ZooKeeper (tickTime 500 ms, `ttl=2`: 2 s sessions):
//! the conformance suite, then what is ZooKeeper's own: sessions that end and come back,
//! nodes deleted by hand, bad children, a provider killed with SIGKILL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use example_provider::GreeterClient;
use rpc_core::registry::{Registry, ServiceInstance, ServiceKey, WatchEvent};
use rpc_core::Server;
use rpc_registry::{RegistryUrl, ZookeeperRegistry};
use tests::process::Provider;
use tests::servers::example_server;
use tests::wait::{addresses, holds_for, next_event, wait_until, watch_until};
use tests::zookeeper::{ZookeeperBackend, ZookeeperEnsemble, ZookeeperServer};

tests::conformance_tests!(ZookeeperBackend::start("ttl=2").await);
tests::governance_conformance_tests!(ZookeeperBackend::start("ttl=2").await);

/// Session timeout of the registries under test.
const TTL: Duration = Duration::from_secs(2);
/// Their heartbeat: ttl / 3.
const HEARTBEAT: Duration = Duration::from_millis(667);

fn greeter_key() -> ServiceKey {
    ServiceKey::new("example.Greeter", "1.0.0")
}

fn instance(port: u16) -> ServiceInstance {
    ServiceInstance::new(&greeter_key(), "127.0.0.1", port)
}

fn node_path(instance: &ServiceInstance) -> String {
    format!("/rpc/{}/{}", instance.key(), instance.address())
}

/// A registry with a 2 s session, as the concrete type (for its session id).
async fn zk_registry(server: &ZookeeperServer) -> ZookeeperRegistry {
    let url = RegistryUrl::parse(&server.registry_url("ttl=2")).expect("test url parses");
    ZookeeperRegistry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to zookeeper: {e}"))
}

async fn dyn_registry(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

#[tokio::test]
async fn ttl_sets_the_session_timeout_and_zk_is_an_alias() {
    let server = ZookeeperServer::start().await;
    let registry = zk_registry(&server).await;
    assert_eq!(registry.session_timeout().unwrap(), TTL);
    let alias = dyn_registry(&format!("zk://{}/apps?ttl=3", server.endpoint())).await;
    assert_eq!(alias.backend(), "zookeeper");
    let inst = instance(9001);
    alias.register(&inst).await.unwrap();
    let (_, owner) = server
        .get_raw("/apps/example.Greeter:1.0.0/127.0.0.1:9001")
        .await
        .expect("node under the URL's root");
    assert_ne!(owner, 0, "the instance node must be ephemeral");
    let (_, parent_owner) = server.get_raw("/apps/example.Greeter:1.0.0").await.unwrap();
    assert_eq!(parent_owner, 0, "parents must be persistent");
    alias.shutdown().await.unwrap();
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn connect_names_zookeeper_when_no_server_answers_and_skips_dead_endpoints() {
    let server = ZookeeperServer::start().await;
    let dead = tests::net::free_port();
    let start = Instant::now();
    let err = rpc_registry::connect(&format!("zookeeper://127.0.0.1:{dead}?connect_timeout=1"))
        .await
        .err()
        .expect("no server listens there");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(message.contains("zookeeper"), "{message}");
    // With a dead server first in the list, the client moves on to the live one.
    let url = format!("zookeeper://127.0.0.1:{dead},{}?ttl=2", server.endpoint());
    let registry = dyn_registry(&url).await;
    registry.register(&instance(9002)).await.unwrap();
    assert_eq!(registry.discover(&greeter_key()).await.unwrap().len(), 1);
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_provider_killed_with_sigkill_disappears_within_the_session_timeout() {
    let server = ZookeeperServer::start().await;
    let mut provider = Provider::start(&server.registry_url("ttl=2"), &[]);
    let consumer = dyn_registry(&server.registry_url("ttl=2")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let address = provider.address();
    watch_until(
        &mut watch,
        Duration::from_secs(10),
        "the provider to register",
        |list| addresses(list).contains(&address),
    )
    .await
    .unwrap();
    let killed = Instant::now();
    provider.kill();
    watch_until(
        &mut watch,
        TTL + Duration::from_secs(2),
        "the killed provider to go",
        |list| !addresses(list).contains(&address),
    )
    .await
    .unwrap();
    println!(
        "killed provider gone from the watch after {:?}",
        killed.elapsed()
    );
    assert!(consumer.discover(&greeter_key()).await.unwrap().is_empty());
    consumer.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_node_deleted_by_hand_comes_back_within_a_heartbeat() {
    let server = ZookeeperServer::start().await;
    let registry = zk_registry(&server).await;
    let inst = instance(9003);
    registry.register(&inst).await.unwrap();
    let path = node_path(&inst);
    assert!(server.delete_raw(&path).await);
    let deleted = Instant::now();
    let session = registry.session_id().unwrap();
    wait_until(
        HEARTBEAT + Duration::from_secs(1),
        "the deleted node to come back",
        || async { matches!(server.get_raw(&path).await, Some((_, owner)) if owner == session) },
    )
    .await
    .unwrap();
    println!("deleted node back after {:?}", deleted.elapsed());
    let (data, _) = server.get_raw(&path).await.unwrap();
    assert_eq!(ServiceInstance::from_json(&data).unwrap(), inst);
    registry.shutdown().await.unwrap();
}

/// The server is down longer than the session timeout, so the client gives the session up,
/// while the server, restarted from its data, still holds the old session and its nodes for
/// another session timeout. The registry must replace the old nodes, not trust them: every
/// node must be owned by the new session before the old one could have expired, and never
/// be missing on the way. (Whether the test itself got to read an old owner first depends
/// on who reconnects first; it is printed.)
#[tokio::test]
async fn a_forced_session_expiry_recreates_every_node_even_when_the_old_node_survives() {
    let mut server = ZookeeperServer::start().await;
    let registry = zk_registry(&server).await;
    let instances = [instance(9004), instance(9005)];
    for inst in &instances {
        registry.register(inst).await.unwrap();
    }
    let old_session = registry.session_id().unwrap();
    server.stop();
    // zookeeper-client gives a session up after 1.4 x its timeout without contact.
    tokio::time::sleep(TTL * 7 / 5 + Duration::from_millis(700)).await;
    server.start_again().await;
    let restarted = Instant::now();
    let paths: Vec<String> = instances.iter().map(node_path).collect();
    let mut saw_old_owner = false;
    // Until every node is owned by the new session: never missing, old owner seen first.
    loop {
        let mut all_new = true;
        for path in &paths {
            match server.get_raw(path).await {
                None => panic!("{path} went missing after the restart"),
                Some((_, owner)) if owner == old_session => {
                    saw_old_owner = true;
                    all_new = false;
                }
                Some((_, owner)) => {
                    let current = registry.session_id().unwrap();
                    all_new &= owner == current;
                }
            }
        }
        if all_new {
            break;
        }
        // The restarted server expires the old session no sooner than TTL after it is up, so
        // until then the old nodes exist and the registry must replace them, not wait.
        assert!(
            restarted.elapsed() < TTL,
            "nodes not taken over by the new session within {:?} of the restart",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "nodes owned by the new session {:?} after the restart (old owner seen: {saw_old_owner})",
        restarted.elapsed()
    );
    assert_ne!(registry.session_id().unwrap(), old_session);
    // When the server finally expires the old session, the new nodes stay.
    holds_for(TTL * 2, "every node to stay registered", || async {
        let mut present = true;
        for path in &paths {
            present &= server.get_raw(path).await.is_some();
        }
        present
    })
    .await
    .unwrap();
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn zookeeper_restarted_with_its_data_wiped_gets_every_instance_back() {
    let mut server = ZookeeperServer::start().await;
    let registry = zk_registry(&server).await;
    let instances = [instance(9006), instance(9007), instance(9008)];
    for inst in &instances {
        registry.register(inst).await.unwrap();
    }
    let consumer = dyn_registry(&server.registry_url("ttl=2")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let expected = addresses(&instances);
    watch_until(&mut watch, Duration::from_secs(5), "all three", |list| {
        addresses(list) == expected
    })
    .await
    .unwrap();
    server.stop();
    server.wipe_data();
    server.start_again().await;
    let up = Instant::now();
    let waited = wait_until(Duration::from_secs(10), "every instance back", || async {
        let mut all = true;
        for inst in &instances {
            all &= server.get_raw(&node_path(inst)).await.is_some();
        }
        all
    })
    .await
    .unwrap();
    println!("every instance back {waited:?} after zookeeper was up again");
    assert!(
        up.elapsed() < TTL * 2 + HEARTBEAT * 2,
        "took {:?}",
        up.elapsed()
    );
    let seen = watch_until(
        &mut watch,
        Duration::from_secs(10),
        "the consumer to see all three again",
        |list| addresses(list) == expected,
    )
    .await
    .unwrap();
    assert!(
        seen.iter()
            .any(|e| matches!(e, WatchEvent::Disconnected { .. })),
        "the watch should have reported the outage: {seen:?}"
    );
    consumer.shutdown().await.unwrap();
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_short_outage_reports_disconnected_then_a_fresh_snapshot() {
    let mut server = ZookeeperServer::start().await;
    let registry = dyn_registry(&server.registry_url("ttl=10")).await;
    let consumer = dyn_registry(&server.registry_url("ttl=10")).await;
    registry.register(&instance(9009)).await.unwrap();
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    match next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap()
    {
        WatchEvent::Snapshot(list) => assert_eq!(list.len(), 1),
        other => panic!("expected the first snapshot, got {other:?}"),
    }
    server.stop();
    match next_event(&mut watch, Duration::from_secs(10))
        .await
        .unwrap()
    {
        WatchEvent::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    server.start_again().await;
    match next_event(&mut watch, Duration::from_secs(15))
        .await
        .unwrap()
    {
        WatchEvent::Snapshot(list) => assert_eq!(addresses(&list), vec!["127.0.0.1:9009"]),
        other => panic!("expected a fresh snapshot, got {other:?}"),
    }
    consumer.shutdown().await.unwrap();
    registry.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_child_with_bad_data_is_skipped_and_calls_still_succeed() {
    let server = ZookeeperServer::start().await;
    let url = server.registry_url("ttl=2");
    let provider_registry = dyn_registry(&url).await;
    let provider = example_server(
        Server::builder()
            .registry(provider_registry.clone())
            .propagation_grace(Duration::from_millis(10)),
    )
    .await;
    let real = provider.local_addr().to_string();
    server
        .put_raw("/rpc/example.Greeter:1.0.0/127.0.0.1:1", b"{not json")
        .await;
    server
        .put_raw("/rpc/example.Greeter:1.0.0/garbage", b"\x00\x01")
        .await;
    let consumer = dyn_registry(&url).await;
    let found = consumer.discover(&greeter_key()).await.unwrap();
    assert_eq!(addresses(&found), vec![real.clone()]);
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    match next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap()
    {
        WatchEvent::Snapshot(list) => assert_eq!(addresses(&list), vec![real.clone()]),
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let greeter = GreeterClient::discover(consumer.clone());
    for i in 0..20 {
        let reply = greeter.hello(format!("n{i}")).await.unwrap();
        assert_eq!(reply, format!("Hello, n{i}!"));
    }
    assert_eq!(greeter.whoami().await.unwrap(), real);
    provider.shutdown().await.unwrap();
    consumer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_servers_the_client_moves_on_when_its_server_dies() {
    let mut ensemble = ZookeeperEnsemble::start().await;
    let url = RegistryUrl::parse(&ensemble.registry_url("ttl=6")).expect("test url parses");
    let registry = ZookeeperRegistry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to the ensemble: {e}"));
    let session = registry.session_id().unwrap();
    let first = instance(9010);
    registry.register(&first).await.unwrap();
    let mut watch = registry.watch(&greeter_key()).await.unwrap();
    watch_until(
        &mut watch,
        Duration::from_secs(5),
        "the first instance",
        |list| list.len() == 1,
    )
    .await
    .unwrap();
    // `srvr` counts its own probe: the member serving the registry reports 2 or more.
    let counts = ensemble.connection_counts().await;
    let serving = counts
        .iter()
        .position(|&n| n >= 2)
        .unwrap_or_else(|| panic!("no member reports the registry's connection: {counts:?}"));
    ensemble.members[serving].stop();
    let killed = Instant::now();
    let second = instance(9011);
    wait_until(
        Duration::from_secs(10),
        "a register through another member",
        || async { registry.register(&second).await.is_ok() },
    )
    .await
    .unwrap();
    println!(
        "registered through another member {:?} after the kill",
        killed.elapsed()
    );
    let both = addresses(&[first.clone(), second.clone()]);
    watch_until(
        &mut watch,
        Duration::from_secs(10),
        "both instances",
        |list| addresses(list) == both,
    )
    .await
    .unwrap();
    assert_eq!(
        registry.session_id().unwrap(),
        session,
        "the session must move to another member, not expire"
    );
    let found = registry.discover(&greeter_key()).await.unwrap();
    assert_eq!(addresses(&found), both);
    registry.shutdown().await.unwrap();
}
