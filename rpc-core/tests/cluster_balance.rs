//! Balancers end to end: calls through a registry client over real loopback servers.

mod cluster_support;

use std::collections::HashMap;
use std::sync::Arc;

use cluster_support::{echo_key, serve, serve_on, EchoClient, FixtureRegistry, TestServer};
use rpc_core::cluster::{BalancerKind, ClusterConfig};
use rpc_core::{CallOptions, Client};

async fn three() -> (Vec<TestServer>, Arc<FixtureRegistry>) {
    let servers = vec![serve("a").await, serve("b").await, serve("c").await];
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), servers.iter().map(|s| s.instance()).collect());
    (servers, registry)
}

fn client(registry: &Arc<FixtureRegistry>, kind: BalancerKind) -> EchoClient {
    EchoClient::new(
        Client::builder()
            .cluster(ClusterConfig::default().balancer_kind(kind))
            .discover(registry.clone()),
    )
}

async fn shares(echo: &EchoClient, calls: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..calls {
        *counts
            .entry(echo.whoami().await.expect("call"))
            .or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_random_spread_evenly_over_real_servers() {
    let (_servers, registry) = three().await;
    for kind in [BalancerKind::RoundRobin, BalancerKind::Random] {
        let counts = shares(&client(&registry, kind), 600).await;
        assert_eq!(counts.len(), 3, "{kind}: {counts:?}");
        for (name, count) in &counts {
            let share = *count as f64 / 600.0;
            let tolerance = 0.07;
            assert!(
                (share - 1.0 / 3.0).abs() <= tolerance,
                "{kind}: {name} got {share:.3} ({counts:?})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_round_robin_follows_instance_weights() {
    let servers = [serve("a").await, serve("b").await, serve("c").await];
    let registry = FixtureRegistry::new();
    let list = servers
        .iter()
        .zip([5, 1, 1])
        .map(|(s, weight)| {
            let mut i = s.instance();
            i.weight = weight;
            i
        })
        .collect();
    registry.set(&echo_key(), list);
    let echo = client(&registry, BalancerKind::WeightedRoundRobin);
    let order: Vec<String> = {
        let mut order = Vec::new();
        for _ in 0..7 {
            order.push(echo.whoami().await.expect("call"));
        }
        order
    };
    assert_eq!(order, ["a", "a", "b", "a", "c", "a", "a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sends_a_key_to_one_server() {
    let (servers, registry) = three().await;
    let echo = client(&registry, BalancerKind::ConsistentHash);
    let mut owners = HashMap::new();
    for key in 0..30u32 {
        let keyed = echo.with_options(CallOptions::new().with_hash_key(key));
        let first = keyed.whoami().await.expect("call");
        for _ in 0..3 {
            assert_eq!(
                keyed.whoami().await.expect("call"),
                first,
                "key {key} moved"
            );
        }
        owners.insert(key, first);
    }
    let used: std::collections::HashSet<&String> = owners.values().collect();
    assert_eq!(used.len(), servers.len(), "30 keys spread over all three");

    // A second client (another consumer) routes every key the same way.
    let other = client(&registry, BalancerKind::ConsistentHash);
    for (key, owner) in &owners {
        let keyed = other.with_options(CallOptions::new().with_hash_key(*key));
        assert_eq!(&keyed.whoami().await.expect("call"), owner);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_steers_calls_away_from_a_slow_server() {
    let servers = [
        serve_on("slow", "127.0.0.1:0", true).await,
        serve("fast-1").await,
        serve("fast-2").await,
    ];
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), servers.iter().map(|s| s.instance()).collect());
    let echo = client(&registry, BalancerKind::LeastLoaded);
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let echo = echo.clone();
            tokio::spawn(async move {
                for _ in 0..30 {
                    // Slow servers sleep 20 ms; fast ones answer at once.
                    echo.sleep_idempotent(20).await.expect("call");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let slow = servers[0].calls();
    println!("least-loaded: slow server took {slow} of 300 calls");
    assert!(slow < 50, "the slow server took {slow} of 300 calls");
}
