//! The etcd backend on a real 3-member cluster: with the member the clients use first killed,
//! registration, discovery, watch and the lease keep working through the other members.

use std::time::Duration;

use rpc_core::registry::{ServiceInstance, ServiceKey, WatchEvent};
use tests::etcd::EtcdCluster;
use tests::wait::{addresses, holds_for, next_event, wait_until, watch_until};

/// Generous: losing the leader means an election (about a second), on 2 busy cores.
const WAIT: Duration = Duration::from_secs(15);

fn instance(port: u16) -> ServiceInstance {
    ServiceInstance::new(&ServiceKey::new("etcd.Cluster", "1.0.0"), "127.0.0.1", port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keeps_working_with_the_first_member_killed() {
    tests::logging::init();
    let mut cluster = EtcdCluster::start(3).await;
    // Every endpoint, member 0 first: both clients start on member 0.
    let url = cluster.registry_url("ttl=2");
    let provider = rpc_registry::connect(&url).await.expect("connect provider");
    let consumer = rpc_registry::connect(&url).await.expect("connect consumer");
    let (a, b) = (instance(22_001), instance(22_002));
    let key = a.key();

    provider
        .register(&a)
        .await
        .expect("register before the kill");
    let mut watch = consumer.watch(&key).await.expect("watch");
    let first = next_event(&mut watch, WAIT).await.expect("first snapshot");
    assert_eq!(first, WatchEvent::Snapshot(vec![a.clone()]));

    // The hardest case: member 0 is both the clients' first endpoint and the leader, so its
    // death also means an election.
    cluster
        .make_leader(0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cluster.kill(0);

    // Registration: may take an election's time, but must succeed without the caller retrying.
    tokio::time::timeout(WAIT, provider.register(&b))
        .await
        .expect("register did not finish")
        .expect("register with member 0 dead");
    // Discovery.
    let found = consumer
        .discover(&key)
        .await
        .expect("discover with member 0 dead");
    assert_eq!(addresses(&found), addresses(&[a.clone(), b.clone()]));
    // Watch: follows through another member (after reporting the broken stream).
    watch_until(&mut watch, WAIT, "both instances", |list| list.len() == 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    provider
        .deregister(&a)
        .await
        .expect("deregister with member 0 dead");
    watch_until(&mut watch, WAIT, "only b", |list| list == [b.clone()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The lease is kept alive through the other members: b outlives its 2 s TTL.
    holds_for(Duration::from_secs(3), "b registered", || async {
        matches!(consumer.discover(&key).await, Ok(list) if list == [b.clone()])
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // A client that starts now, with the dead member first in its list, works too.
    let late = rpc_registry::connect(&url)
        .await
        .expect("connect late client");
    let found = late
        .discover(&key)
        .await
        .expect("discover from a new client");
    assert_eq!(found, vec![b.clone()]);
    wait_until(Duration::from_secs(4), "one lease, the provider's", || async {
        matches!(cluster.etcdctl(&["lease", "list"]).await, Ok(out) if out.starts_with("found 1 leases"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The member comes back; everything goes on.
    cluster.restart(0).await;
    provider
        .register(&a)
        .await
        .expect("register after the restart");
    watch_until(&mut watch, WAIT, "a and b", |list| list.len() == 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    provider.shutdown().await.expect("shutdown");
    watch_until(&mut watch, WAIT, "nothing after shutdown", |list| {
        list.is_empty()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
