//! The Redis backend against a real `redis-server` (`ttl=2`: keys live 2 s unless renewed,
//! renewed and resynced every 667 ms): the conformance suite, then what is Redis's own: the
//! key layout and its TTL, keys expiring with no client sweeping,
//! a key deleted by hand, `FLUSHALL`, a Redis restart, lost notifications. Provider processes
//! (SIGKILL, Redis down) are in redis_providers.rs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::registry::{Registry, ServiceInstance, WatchEvent};
use rpc_core::RegistryError;
use tests::consumer::greeter_key;
use tests::redis::{RedisBackend, RedisServer};
use tests::wait::{addresses, next_event, wait_until, watch_until};

tests::conformance_tests!(RedisBackend::start("ttl=2").await);

/// Key TTL of the registries under test.
const TTL: Duration = Duration::from_secs(2);
/// Their heartbeat (renewal and resync interval): ttl / 3.
const HEARTBEAT: Duration = Duration::from_millis(667);

fn instance(port: u16) -> ServiceInstance {
    ServiceInstance::new(&greeter_key(), "127.0.0.1", port)
}

fn node_key(instance: &ServiceInstance) -> String {
    format!("/rpc/{}/{}", instance.key(), instance.address())
}

async fn registry(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_layout_with_the_ttl_and_read_with_plain_get() {
    let server = RedisServer::start().await;
    let url = format!("redis://{}/3?ttl=2&root=/apps", server.endpoint());
    let provider = registry(&url).await;
    assert_eq!(provider.backend(), "redis");
    let inst = instance(9101);
    provider.register(&inst).await.unwrap();
    // Database 3, so the key is not in database 0.
    let key = format!("/apps/{}/{}", inst.key(), inst.address());
    assert_eq!(server.get_raw(&key).await, None, "the key must be in db 3");
    let mut db3 = server.raw().await;
    redis::cmd("SELECT")
        .arg(3)
        .query_async::<()>(&mut db3)
        .await
        .unwrap();
    let value: Vec<u8> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut db3)
        .await
        .unwrap();
    assert_eq!(ServiceInstance::from_json(&value).unwrap(), inst);
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut db3)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 2_000, "PTTL {pttl}");
    // The keeper renews it: well past the TTL, it is still there.
    tokio::time::sleep(TTL + HEARTBEAT).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut db3)
        .await
        .unwrap();
    assert!(pttl > 0, "the key was not renewed: PTTL {pttl}");
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_nobody_renews_leaves_every_watch_within_ttl_plus_1s() {
    let server = RedisServer::start().await;
    let consumer = registry(&server.registry_url("ttl=30")).await;
    let inst = instance(9102);
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    // Written by hand with a TTL, as a provider that then died would leave it.
    let key = node_key(&inst);
    server
        .command(&["SET", &key, &inst.to_json(), "PX", "2000"])
        .await;
    let written = Instant::now();
    watch_until(&mut watch, Duration::from_secs(5), "the entry", |list| {
        list.len() == 1
    })
    .await
    .unwrap();
    watch_until(
        &mut watch,
        TTL + Duration::from_secs(1),
        "the expired entry to go",
        |list| list.is_empty(),
    )
    .await
    .unwrap();
    println!(
        "expired entry gone {:?} after it was written",
        written.elapsed()
    );
    assert!(written.elapsed() <= TTL + Duration::from_secs(1));
    consumer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_by_hand_comes_back_within_a_heartbeat() {
    let server = RedisServer::start().await;
    let provider = registry(&server.registry_url("ttl=2")).await;
    let inst = instance(9103);
    provider.register(&inst).await.unwrap();
    let key = node_key(&inst);
    assert!(server.delete_raw(&key).await);
    let deleted = Instant::now();
    wait_until(
        HEARTBEAT + Duration::from_secs(1),
        "the deleted key to come back",
        || async { server.get_raw(&key).await.is_some() },
    )
    .await
    .unwrap();
    println!("deleted key back after {:?}", deleted.elapsed());
    let value = server.get_raw(&key).await.unwrap();
    assert_eq!(ServiceInstance::from_json(&value).unwrap(), inst);
    assert!(
        server.pttl(&key).await > 0,
        "the key came back without a TTL"
    );
    // A value changed by hand is put back too.
    server.put_raw(&key, b"{\"changed\":true}").await;
    wait_until(
        HEARTBEAT + Duration::from_secs(1),
        "our value back",
        || async {
            server
                .get_raw(&key)
                .await
                .is_some_and(|v| ServiceInstance::from_json(&v).ok() == Some(inst.clone()))
        },
    )
    .await
    .unwrap();
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_is_healed_and_consumers_see_everyone_again() {
    let server = RedisServer::start().await;
    let provider = registry(&server.registry_url("ttl=2")).await;
    let instances = [instance(9104), instance(9105), instance(9106)];
    for inst in &instances {
        provider.register(inst).await.unwrap();
    }
    // One more written by hand, which nobody writes back.
    let by_hand = instance(9199);
    server
        .put_raw(&node_key(&by_hand), by_hand.to_json().as_bytes())
        .await;
    let consumer = registry(&server.registry_url("ttl=2")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let expected = addresses(&instances);
    watch_until(&mut watch, Duration::from_secs(5), "all four", |list| {
        list.len() == 4
    })
    .await
    .unwrap();
    server.command(&["FLUSHALL"]).await;
    let flushed = Instant::now();
    // The keeper writes every key back within a heartbeat ...
    wait_until(
        HEARTBEAT + Duration::from_secs(1),
        "every key back",
        || async {
            let mut all = true;
            for inst in &instances {
                all &= server.get_raw(&node_key(inst)).await.is_some();
            }
            all
        },
    )
    .await
    .unwrap();
    // ... and the consumer, told by no per-key event about the flush, sees the hand-written
    // entry gone and the three back by its next listing.
    watch_until(
        &mut watch,
        HEARTBEAT * 2 + Duration::from_secs(1),
        "the three without the flushed hand-written entry",
        |list| addresses(list) == expected,
    )
    .await
    .unwrap();
    println!("all three back {:?} after FLUSHALL", flushed.elapsed());
    consumer.shutdown().await.unwrap();
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reports_disconnected_then_every_instance_returns_and_notifications_resume() {
    let mut server = RedisServer::start().await;
    // A long TTL: the resync (every 10 s) cannot stand in for notifications here.
    let url = server.registry_url("ttl=30&heartbeat=1");
    let provider = registry(&url).await;
    let instances = [instance(9107), instance(9108)];
    for inst in &instances {
        provider.register(inst).await.unwrap();
    }
    let consumer = registry(&server.registry_url("ttl=30")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    let expected = addresses(&instances);
    match next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap()
    {
        WatchEvent::Snapshot(list) => assert_eq!(addresses(&list), expected),
        other => panic!("expected the first snapshot, got {other:?}"),
    }
    server.stop().await;
    match next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap()
    {
        WatchEvent::Disconnected { .. } => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // Back empty, with notifications off again (command-line config).
    server.start_again().await;
    let up = Instant::now();
    watch_until(
        &mut watch,
        Duration::from_secs(10),
        "both instances back",
        |list| addresses(list) == expected,
    )
    .await
    .unwrap();
    println!("both back {:?} after redis was up again", up.elapsed());
    // Notifications work again: a new instance shows well before the 10 s resync.
    let late = instance(9109);
    provider.register(&late).await.unwrap();
    let registered = Instant::now();
    watch_until(
        &mut watch,
        Duration::from_secs(2),
        "the new instance",
        |list| list.len() == 3,
    )
    .await
    .unwrap();
    println!("new instance seen after {:?}", registered.elapsed());
    consumer.shutdown().await.unwrap();
    provider.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_notification_is_repaired_by_the_resync_within_a_heartbeat() {
    let server = RedisServer::start().await;
    let consumer = registry(&server.registry_url("ttl=2")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    assert_eq!(
        next_event(&mut watch, Duration::from_secs(5))
            .await
            .unwrap(),
        WatchEvent::Snapshot(vec![])
    );
    // Every notification from now on is lost.
    server
        .command(&["CONFIG", "SET", "notify-keyspace-events", ""])
        .await;
    let inst = instance(9110);
    server
        .put_raw(&node_key(&inst), inst.to_json().as_bytes())
        .await;
    let written = Instant::now();
    watch_until(
        &mut watch,
        HEARTBEAT + Duration::from_millis(500),
        "the resync to find the new entry",
        |list| list.len() == 1,
    )
    .await
    .unwrap();
    println!("found by the resync after {:?}", written.elapsed());
    consumer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_redis_and_the_endpoint_and_never_the_password() {
    let dead = tests::net::free_port();
    let start = Instant::now();
    let err = rpc_registry::connect(&format!("redis://127.0.0.1:{dead}?connect_timeout=1"))
        .await
        .err()
        .expect("no server listens there");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let message = err.to_string();
    assert!(
        matches!(err, RegistryError::Unavailable { .. })
            && message.contains("redis")
            && message.contains(&format!("127.0.0.1:{dead}")),
        "{message}"
    );
    let server = RedisServer::start().await;
    server
        .command(&["CONFIG", "SET", "requirepass", "right-secret"])
        .await;
    let wrong = format!("redis://:wrong-secret@{}", server.endpoint());
    let err = rpc_registry::connect(&wrong)
        .await
        .err()
        .expect("wrong password");
    let message = format!("{err} {err:?}");
    assert!(!message.contains("wrong-secret"), "{message}");
    let right = format!("redis://default:right-secret@{}", server.endpoint());
    let registry = registry(&right).await;
    registry.register(&instance(9111)).await.unwrap();
    assert_eq!(registry.discover(&greeter_key()).await.unwrap().len(), 1);
    registry.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_or_drop_ends_watch_streams() {
    let server = RedisServer::start().await;
    let consumer = registry(&server.registry_url("ttl=2")).await;
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    next_event(&mut watch, Duration::from_secs(5))
        .await
        .unwrap();
    consumer.shutdown().await.unwrap();
    assert_eq!(
        next_event(&mut watch, Duration::from_secs(5)).await,
        Err("the stream ended".to_string())
    );
}
