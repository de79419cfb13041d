//! How calls spread over real provider processes found through a real etcd.

use std::collections::BTreeMap;
use std::time::Duration;

use example_provider::GreeterClient;
use rpc_core::cluster::ClusterConfig;
use rpc_core::{CallOptions, Client};
use tests::consumer::{greeter_key, wait_listed};
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::wait::wait_until;

async fn client(url: &str, balancer: &str) -> Client {
    let config = ClusterConfig::default()
        .balancer_named(balancer)
        .unwrap_or_else(|e| panic!("{e}"));
    Client::builder()
        .cluster(config)
        .discover(rpc_registry::connect(url).await.unwrap())
}

async fn shares(greeter: &GreeterClient, calls: usize) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..calls {
        let who = greeter.whoami().await.unwrap();
        *counts.entry(who).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| (k, n as f64 / calls as f64))
        .collect()
}

fn assert_share(shares: &BTreeMap<String, f64>, provider: &str, expected: f64) {
    let got = shares.get(provider).copied().unwrap_or(0.0);
    assert!(
        (got - expected).abs() <= 0.05,
        "{provider} got {:.1}% of calls, expected {:.1}% ± 5%: {shares:?}",
        got * 100.0,
        expected * 100.0
    );
}

#[tokio::test]
async fn round_robin_and_random_give_each_of_three_providers_a_third() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers: Vec<Provider> = (0..3).map(|_| Provider::start(&url, &[])).collect();
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    for balancer in ["round-robin", "random"] {
        let client = client(&url, balancer).await;
        wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(10)).await;
        let shares = shares(&GreeterClient::new(client), 3000).await;
        println!("{balancer}: {shares:?}");
        for addr in &addrs {
            assert_share(&shares, addr, 1.0 / 3.0);
        }
    }
}

#[tokio::test]
async fn weighted_random_follows_weights_one_two_three() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let providers: Vec<Provider> = ["1", "2", "3"]
        .iter()
        .map(|w| Provider::start(&url, &["--weight", w]))
        .collect();
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    let client = client(&url, "weighted-random").await;
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(10)).await;
    let shares = shares(&GreeterClient::new(client), 3000).await;
    println!("weighted-random 1:2:3: {shares:?}");
    for (addr, weight) in addrs.iter().zip([1.0, 2.0, 3.0]) {
        assert_share(&shares, addr, weight / 6.0);
    }
}

#[tokio::test]
async fn consistent_hash_keeps_keys_and_moves_few_when_a_fourth_provider_joins() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let mut providers: Vec<Provider> = (0..3).map(|_| Provider::start(&url, &[])).collect();
    let addrs: Vec<String> = providers.iter().map(Provider::address).collect();
    let client = client(&url, "consistent-hash").await;
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(10)).await;
    let greeter = GreeterClient::new(client.clone());
    let owner = |key: usize| {
        let greeter = greeter.with_options(CallOptions::new().with_hash_key(format!("user-{key}")));
        async move { greeter.whoami().await.unwrap() }
    };

    let mut before = Vec::new();
    for key in 0..1000 {
        before.push(owner(key).await);
    }
    // The same key always goes to the same provider.
    for key in (0..1000).step_by(10) {
        assert_eq!(
            owner(key).await,
            before[key],
            "key {key} moved without a membership change"
        );
    }
    let used: std::collections::BTreeSet<&String> = before.iter().collect();
    assert_eq!(
        used.len(),
        3,
        "keys did not spread over all three providers"
    );

    providers.push(Provider::start(&url, &[]));
    let fourth = providers[3].address();
    let mut all = addrs.clone();
    all.push(fourth.clone());
    wait_listed(&client, &greeter_key(), &all, Duration::from_secs(10)).await;
    wait_until(
        Duration::from_secs(10),
        "the ring to include the 4th provider",
        || async {
            for key in 0..200 {
                if owner(key).await == fourth {
                    return true;
                }
            }
            false
        },
    )
    .await
    .unwrap();

    let mut moved = 0;
    for (key, old) in before.iter().enumerate() {
        let now = owner(key).await;
        if &now != old {
            assert_eq!(now, fourth, "key {key} moved between two old providers");
            moved += 1;
        }
    }
    println!("{moved} of 1000 keys moved to the 4th provider");
    assert!(moved > 0, "no key moved to the new provider");
    assert!(moved <= 350, "{moved} of 1000 keys moved, more than 35%");
}
