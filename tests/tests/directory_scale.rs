//! The consumer's directory at scale and under bad luck (issue 13): host names that fail to
//! resolve are retried without waiting for a registry change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rpc_core::cluster::{Directory, DirectoryConfig, HostResolver};
use rpc_core::registry::{ServiceInstance, ServiceKey};
use tests::wait::wait_until;

#[tokio::test]
async fn a_host_name_that_fails_to_resolve_once_joins_within_seconds_with_no_registry_change() {
    let registry = rpc_registry::connect("memory://dns-fails-once")
        .await
        .expect("memory registry");
    let key = ServiceKey::new("dns.Flaky", "1.0.0");
    registry
        .register(&ServiceInstance::new(&key, "provider.test", 9301))
        .await
        .expect("register");
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&lookups);
    let mut config = DirectoryConfig::default();
    config.resolver = HostResolver::new(move |host, port| {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first || host != "provider.test" {
                return Err(std::io::Error::other(
                    "temporary failure in name resolution",
                ));
            }
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
        }
        .boxed()
    });
    let directory = Directory::with_config(registry, config);
    let entry = directory.service(&key).await.expect("discover");
    assert_eq!(
        entry.instances().len(),
        1,
        "the registry lists the instance"
    );
    assert!(
        entry.members().endpoints().is_empty(),
        "the first lookup failed"
    );
    assert_eq!(entry.unresolved().len(), 1, "it is reported as unresolved");
    assert_eq!(entry.unresolved()[0].address, "provider.test:9301");
    let took = wait_until(
        Duration::from_secs(5),
        "the instance to resolve",
        || async { entry.members().endpoints().len() == 1 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("resolved {took:?} after the failed lookup");
    assert!(entry.unresolved().is_empty());
    assert_eq!(
        entry.members().endpoints()[0].addr(),
        SocketAddr::from(([127, 0, 0, 1], 9301))
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 2, "one failure, one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_call_raw_keys_then_idle_bring_live_watches_back_under_the_bound() {
    use futures::StreamExt;
    use rpc_core::cluster::{ClusterConfig, FaultPolicy};
    use rpc_core::CallOptions;
    use rpc_core::Client;
    use rpc_core::Codec;

    const KEYS: usize = 10_000;
    const MAX_WATCHES: usize = 1_000;
    let idle = Duration::from_millis(500);
    let registry = rpc_registry::connect("memory://gateway-keys")
        .await
        .expect("memory registry");
    let mut directory = DirectoryConfig::default();
    directory.idle_timeout = Some(idle);
    directory.max_watches = MAX_WATCHES;
    let cluster = ClusterConfig::default()
        .policy(FaultPolicy::Failfast)
        .directory(directory);
    let client = Client::builder().cluster(cluster).discover(registry);
    let watches = client.directory().expect("a registry client");
    let mut most = 0;
    let mut calls = futures::stream::iter(0..KEYS)
        .map(|i| {
            let client = client.clone();
            async move {
                let options = CallOptions::default();
                let key = ServiceKey::new(format!("gateway.Key{i:05}"), "1.0.0");
                let args = bytes::Bytes::from_static(b"[]");
                client
                    .call_raw(&key, "m", Codec::Json, args, true, &options)
                    .await
            }
        })
        .buffer_unordered(64);
    let mut done = 0;
    while let Some(result) = calls.next().await {
        assert!(result.is_err(), "no key has a provider");
        done += 1;
        most = most.max(watches.live_watches());
    }
    assert_eq!(done, KEYS);
    println!("at most {most} live watches during {KEYS} keys (bound {MAX_WATCHES})");
    assert!(
        most <= MAX_WATCHES,
        "{most} live watches, over the bound {MAX_WATCHES}"
    );
    let took = wait_until(idle * 10, "idle entries to be dropped", || async {
        watches.live_watches() == 0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("every idle entry dropped {took:?} after the last call (idle timeout {idle:?})");
}
