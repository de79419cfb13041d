//! Outlier ejection over real loopback servers: a listed-but-dead instance stops receiving
//! calls after K failures, and comes back after its cool-down once a probe answers.

mod cluster_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{
    dead_addr, echo_key, eventually, instance, serve, serve_on, EchoClient, FixtureRegistry,
};
use rpc_core::cluster::{ClusterConfig, EjectionConfig, Endpoint};
use rpc_core::{Client, RpcError};

fn client(registry: &Arc<FixtureRegistry>, ejection: EjectionConfig) -> EchoClient {
    EchoClient::new(
        Client::builder()
            .cluster(ClusterConfig::default().ejection(ejection))
            .connect_timeout(Duration::from_millis(500))
            .discover(registry.clone()),
    )
}

fn endpoint(echo: &EchoClient, addr: SocketAddr) -> Endpoint {
    echo.client()
        .directory()
        .and_then(|d| d.cached(&echo_key()))
        .expect("entry")
        .members()
        .endpoints()
        .iter()
        .find(|e| e.addr() == addr)
        .cloned()
        .expect("endpoint listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_but_dead_instance_is_ejected_then_readmitted_when_alive() {
    let a = serve("a").await;
    let b = serve("b").await;
    let dead = dead_addr();
    let registry = FixtureRegistry::new();
    registry.set(
        &echo_key(),
        vec![a.instance(), b.instance(), instance(dead)],
    );
    let mut ejection = EjectionConfig::default();
    ejection.consecutive_failures = 3;
    ejection.base_cooldown = Duration::from_millis(200);
    let echo = client(&registry, ejection);

    for _ in 0..30 {
        echo.whoami().await.expect("zero failed calls");
    }
    let d = endpoint(&echo, dead);
    assert!(d.is_ejected(), "the dead instance is ejected");
    assert_eq!(d.calls(), 3, "exactly K attempts reached it");
    for _ in 0..60 {
        echo.whoami().await.expect("zero failed calls");
    }
    assert_eq!(d.calls(), 3, "an ejected instance gets no calls");
    assert_eq!(a.calls() + b.calls(), 90);
    // Probes keep failing while it is dead, with growing cool-downs.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(d.is_ejected());
    assert!(d.ejections() >= 2, "cool-down repeats: {}", d.ejections());

    // It comes back to life on the same port: a probe readmits it.
    let revived = serve_on("revived", &dead.to_string(), false).await;
    let waited = eventually(Duration::from_secs(10), "readmission", || !d.is_ejected()).await;
    println!("ejection: readmitted {waited:?} after the provider came back");
    for _ in 0..30 {
        echo.whoami().await.expect("zero failed calls");
    }
    assert!(
        revived.calls() >= 5,
        "the readmitted instance takes calls: {}",
        revived.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_instance_ejected_one_is_still_tried() {
    let dead = dead_addr();
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![instance(dead)]);
    // The cap would keep the only instance in; this test is about what happens past it.
    let mut ejection = EjectionConfig::default().max_ejected_fraction(1.0);
    ejection.consecutive_failures = 1;
    ejection.base_cooldown = Duration::from_secs(30);
    let echo = client(&registry, ejection);
    let first = echo.whoami().await.expect_err("dead");
    assert!(matches!(first, RpcError::Connect { .. }), "{first:?}");
    let d = endpoint(&echo, dead);
    assert!(d.is_ejected());
    let before = d.calls();
    let again = echo.whoami().await.expect_err("still dead");
    assert!(
        matches!(again, RpcError::Connect { .. }),
        "not NoProvider: {again:?}"
    );
    assert!(d.calls() > before, "the ejected instance was still tried");

    // And a call that gets through readmits it at once, without waiting for the probe.
    let revived = serve_on("revived", &dead.to_string(), false).await;
    assert_eq!(echo.whoami().await.expect("alive again"), "revived");
    assert!(!d.is_ejected());
    assert_eq!(revived.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_protection_keeps_the_list_and_ejection_removes_the_dead() {
    let a = serve("a").await;
    let dead = dead_addr();
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![a.instance(), instance(dead)]);
    let echo = client(&registry, EjectionConfig::default());
    echo.whoami().await.expect("first call");
    // The registry suddenly reports nothing (a bad push, a wiped registry).
    registry.set(&echo_key(), Vec::new());
    let entry = echo
        .client()
        .directory()
        .and_then(|d| d.cached(&echo_key()))
        .expect("entry");
    eventually(Duration::from_secs(5), "empty protection", || {
        entry.is_empty_protected()
    })
    .await;
    for _ in 0..40 {
        echo.whoami()
            .await
            .expect("calls keep flowing to the known providers");
    }
    assert!(endpoint(&echo, dead).is_ejected());
    assert_eq!(a.calls(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejection_never_takes_out_more_than_half_of_a_services_providers() {
    let dead: Vec<SocketAddr> = (0..4).map(|_| dead_addr()).collect();
    let a = serve("a").await;
    let registry = FixtureRegistry::new();
    let mut listed: Vec<_> = dead.iter().map(|d| instance(*d)).collect();
    listed.push(a.instance());
    registry.set(&echo_key(), listed);
    let mut ejection = EjectionConfig::default();
    ejection.consecutive_failures = 1;
    ejection.base_cooldown = Duration::from_secs(30);
    // Enough attempts to get past every dead instance to the live one.
    let echo = EchoClient::new(
        Client::builder()
            .cluster(ClusterConfig::default().ejection(ejection).max_attempts(5))
            .connect_timeout(Duration::from_millis(500))
            .discover(registry.clone()),
    );
    for _ in 0..40 {
        echo.whoami().await.expect("the live instance answers");
    }
    let ejected = dead
        .iter()
        .filter(|d| endpoint(&echo, **d).is_ejected())
        .count();
    // 5 providers, 50 %: at most 2 out at once, though all 4 dead ones failed.
    assert_eq!(ejected, 2, "ejected {ejected} of 5");
    assert!(dead.iter().all(|d| endpoint(&echo, *d).failures() >= 1));
}
