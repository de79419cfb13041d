//! Fault policies over real loopback servers and a fixture registry: fail-over, fail-fast,
//! fail-safe, fail-back, what is (not) retried, deadlines.

mod cluster_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::{
    dead_addr, echo_key, eventually, instance, serve, serve_on, EchoClient, FixtureRegistry,
};
use rpc_core::cluster::{ClusterConfig, EjectionConfig, FailbackConfig, FaultPolicy};
use rpc_core::{CallOptions, Client, RpcError, Status};

fn client(registry: &Arc<FixtureRegistry>, config: ClusterConfig) -> EchoClient {
    EchoClient::new(
        Client::builder()
            .cluster(config)
            .connect_timeout(Duration::from_millis(500))
            .discover(registry.clone()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_skips_a_dead_address_with_zero_failed_calls() {
    let a = serve("a").await;
    let b = serve("b").await;
    let dead = dead_addr();
    let registry = FixtureRegistry::new();
    registry.set(
        &echo_key(),
        vec![instance(dead), a.instance(), b.instance()],
    );
    // Ejection off: every pass over the dead address must be saved by fail-over alone.
    let echo = client(
        &registry,
        ClusterConfig::default().ejection(EjectionConfig::disabled()),
    );
    for _ in 0..60 {
        echo.whoami()
            .await
            .expect("fail-over hides the dead address");
    }
    assert_eq!(a.calls() + b.calls(), 60);
    let members = echo
        .client()
        .directory()
        .and_then(|d| d.cached(&echo_key()))
        .expect("entry")
        .members();
    let dead_endpoint = members
        .endpoints()
        .iter()
        .find(|e| e.addr() == dead)
        .expect("dead endpoint listed");
    assert!(
        dead_endpoint.calls() >= 10,
        "the dead address was tried and skipped"
    );
    assert_eq!(dead_endpoint.failures(), dead_endpoint.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failfast_returns_the_first_failure() {
    let a = serve("a").await;
    let dead = dead_addr();
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![instance(dead), a.instance()]);
    let echo = client(
        &registry,
        ClusterConfig::default().policy(FaultPolicy::Failfast),
    );
    // Round-robin starts at the first instance: the dead one.
    match echo.whoami().await {
        Err(RpcError::Connect { addr, .. }) => assert_eq!(addr, dead),
        other => panic!("expected the connect error of {dead}, got {other:?}"),
    }
    assert_eq!(a.calls(), 0, "fail-fast does not retry");
    assert_eq!(echo.whoami().await.expect("next one is alive"), "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failsafe_returns_the_fallback() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![instance(dead_addr())]);
    let echo = client(
        &registry,
        ClusterConfig::default().policy(FaultPolicy::Failsafe),
    );
    let with_default = echo.with_options(CallOptions::new().with_fallback(&"nobody".to_string()));
    assert_eq!(with_default.whoami().await.expect("fallback"), "nobody");
    // Without a fallback, or with one of the wrong type, the error comes back.
    assert!(matches!(echo.whoami().await, Err(RpcError::Connect { .. })));
    let wrong = echo.with_options(CallOptions::new().with_fallback(&42u32));
    assert!(matches!(
        wrong.whoami().await,
        Err(RpcError::Connect { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_returns_the_error_at_once_and_eventually_delivers() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![instance(dead_addr())]);
    let echo = client(
        &registry,
        ClusterConfig::default()
            .policy(FaultPolicy::Failback)
            .failback({
                let mut c = FailbackConfig::default();
                c.retry_interval = Duration::from_millis(50);
                c
            }),
    );
    let started = Instant::now();
    let error = echo.whoami().await.expect_err("the only provider is dead");
    assert!(matches!(error, RpcError::Connect { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the caller is not kept waiting"
    );

    // A provider appears; the queued call reaches it in the background.
    let a = serve("a").await;
    registry.set(&echo_key(), vec![a.instance()]);
    let waited = eventually(
        Duration::from_secs(5),
        "the queued call to be delivered",
        || a.calls() == 1,
    )
    .await;
    println!("fail-back: delivered {waited:?} after the provider appeared");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.calls(), 1, "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_queues_a_call_that_found_no_provider() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), Vec::new());
    let echo = client(
        &registry,
        ClusterConfig::default()
            .policy(FaultPolicy::Failback)
            .empty_protection(false)
            .failback({
                let mut c = FailbackConfig::default();
                c.retry_interval = Duration::from_millis(50);
                c
            }),
    );
    let error = echo.whoami().await.expect_err("no provider yet");
    assert_eq!(error.to_string(), "no provider for test.Echo:1.0.0");
    let a = serve("a").await;
    registry.set(&echo_key(), vec![a.instance()]);
    eventually(Duration::from_secs(5), "delivery", || a.calls() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_drops_calls_when_the_queue_is_full() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![instance(dead_addr())]);
    let echo = client(
        &registry,
        ClusterConfig::default()
            .policy(FaultPolicy::Failback)
            .ejection(EjectionConfig::disabled())
            .failback({
                let mut c = FailbackConfig::default();
                c.capacity = 2;
                c.retry_interval = Duration::from_millis(300);
                c
            }),
    );
    for _ in 0..5 {
        echo.whoami().await.expect_err("dead provider");
    }
    let a = serve("a").await;
    registry.set(&echo_key(), vec![a.instance()]);
    eventually(Duration::from_secs(5), "the queued calls", || {
        a.calls() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(a.calls(), 2, "only the queue's capacity was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_call_is_retried_only_when_idempotent() {
    let slow = serve_on("slow", "127.0.0.1:0", true).await;
    let fast = serve("fast").await;
    let config = ClusterConfig::default().attempt_timeout(Some(Duration::from_millis(100)));

    // Not idempotent: the timeout is the answer; no second attempt.
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![slow.instance(), fast.instance()]);
    let echo = client(&registry, config.clone());
    let error = echo.sleep(1000).await.expect_err("times out");
    assert_eq!(error.status(), Some(Status::DeadlineExceeded), "{error:?}");
    assert_eq!((slow.calls(), fast.calls()), (1, 0), "not retried");

    // Idempotent: retried on the other provider.
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![slow.instance(), fast.instance()]);
    let echo = client(&registry, config);
    assert_eq!(echo.sleep_idempotent(1000).await.expect("retried"), "fast");
    assert_eq!((slow.calls(), fast.calls()), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_error_is_not_retried() {
    let a = serve("a").await;
    let b = serve("b").await;
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![a.instance(), b.instance()]);
    let echo = client(&registry, ClusterConfig::default());
    match echo.boom().await {
        Err(RpcError::Status { status, .. }) => assert_eq!(status, Status::ApplicationError),
        other => panic!("expected an application error, got {other:?}"),
    }
    assert_eq!(a.calls() + b.calls(), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_the_call_retries_included() {
    let a = serve_on("a", "127.0.0.1:0", true).await;
    let b = serve_on("b", "127.0.0.1:0", true).await;
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), vec![a.instance(), b.instance()]);
    let echo = client(
        &registry,
        ClusterConfig::default().attempt_timeout(Some(Duration::from_millis(80))),
    );
    // Warm the directory so the measurement is the call alone.
    echo.whoami().await.expect("warm-up");
    let bounded = echo.with_options(CallOptions::new().with_deadline(Duration::from_millis(200)));
    let started = Instant::now();
    let error = bounded.sleep_idempotent(1000).await.expect_err("deadline");
    let took = started.elapsed();
    // Either the client's timer or the provider's deadline answer, whichever came first.
    assert_eq!(error.status(), Some(Status::DeadlineExceeded), "{error:?}");
    assert!(took < Duration::from_millis(300), "took {took:?}");
    println!("deadline: 200 ms call to 1 s providers failed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_list_is_no_provider() {
    let registry = FixtureRegistry::new();
    registry.set(&echo_key(), Vec::new());
    let echo = client(&registry, ClusterConfig::default());
    let error = echo.whoami().await.expect_err("nobody serves");
    assert!(matches!(error, RpcError::NoProvider { .. }));
    assert_eq!(error.to_string(), "no provider for test.Echo:1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restarts_under_load_fail_no_call() {
    let registry = FixtureRegistry::new();
    let mut servers = vec![serve("a").await, serve("b").await, serve("c").await];
    let register = |servers: &[cluster_support::TestServer]| {
        registry.set(&echo_key(), servers.iter().map(|s| s.instance()).collect());
    };
    register(&servers);
    let echo = client(&registry, ClusterConfig::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..20)
        .map(|_| {
            let echo = echo.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0usize, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match echo.whoami().await {
                        Ok(_) => ok += 1,
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Take one down: deregister, then shut down gracefully; bring a new one up.
        let old = servers.remove(0);
        register(&servers);
        tokio::time::sleep(Duration::from_millis(20)).await;
        old.handle.shutdown().await.expect("graceful shutdown");
        servers.push(serve(&format!("new-{round}")).await);
        register(&servers);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for worker in workers {
        let (o, f) = worker.await.expect("worker");
        ok += o;
        failed.extend(f);
    }
    println!("restarts under load: {ok} calls, {} failed", failed.len());
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    assert!(ok > 100);
}
