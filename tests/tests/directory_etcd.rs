//! The consumer-side Directory over a real etcd: concurrent cold lookups make one registry
//! request, and a watch event reaches readers (its delay is printed, not asserted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use rpc_core::cluster::Directory;
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent};
use tests::etcd::EtcdServer;

/// The real etcd registry, with a count of the discover and watch requests made through it.
struct Counted {
    inner: Arc<dyn Registry>,
    requests: AtomicUsize,
}

#[async_trait::async_trait]
impl Registry for Counted {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.inner.register(instance).await
    }
    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.inner.deregister(instance).await
    }
    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.discover(key).await
    }
    async fn watch(
        &self,
        key: &ServiceKey,
    ) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.watch(key).await
    }
    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.inner.services().await
    }
    async fn shutdown(&self) -> Result<(), RegistryError> {
        self.inner.shutdown().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_cold_lookups_make_one_registry_request() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let provider = rpc_registry::connect(&url).await.unwrap();
    let key = ServiceKey::new("dir.Cold", "1.0.0");
    provider
        .register(&ServiceInstance::new(&key, "127.0.0.1", 7001))
        .await
        .unwrap();
    let counted = Arc::new(Counted {
        inner: rpc_registry::connect(&url).await.unwrap(),
        requests: AtomicUsize::new(0),
    });
    let directory = Arc::new(Directory::new(counted.clone()));
    let lookups = (0..10_000).map(|_| {
        let (directory, key) = (Arc::clone(&directory), key.clone());
        tokio::spawn(async move { directory.service(&key).await.map(|e| e.instances().len()) })
    });
    for lookup in futures::future::join_all(lookups).await {
        assert_eq!(lookup.unwrap().unwrap(), 1);
    }
    assert_eq!(counted.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_watch_event_reaches_readers() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let provider = rpc_registry::connect(&url).await.unwrap();
    let key = ServiceKey::new("dir.Watched", "1.0.0");
    let directory = Directory::new(rpc_registry::connect(&url).await.unwrap());
    let entry = directory.service(&key).await.unwrap();
    assert!(entry.instances().is_empty());
    let generation = entry.generation();

    let registered = Instant::now();
    provider
        .register(&ServiceInstance::new(&key, "127.0.0.1", 7002))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), entry.changed_since(generation))
        .await
        .expect("the watch event never reached the directory");
    println!("etcd put -> directory readers: {:?}", registered.elapsed());
    let listed: Vec<String> = entry.instances().iter().map(|i| i.address()).collect();
    assert_eq!(listed, vec!["127.0.0.1:7002".to_string()]);
}
