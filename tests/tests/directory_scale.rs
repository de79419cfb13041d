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
