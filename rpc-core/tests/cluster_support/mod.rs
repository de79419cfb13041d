//! Shared fixtures of the `cluster_*` tests: a registry over a tokio watch channel (a test
//! fixture for the Directory, with request counters and an on/off switch), and an `Echo`
//! service served on real loopback TCP ports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use rpc_core::registry::WatchEvent;
use rpc_core::{Registry, RegistryError, ServerHandle, ServiceInstance, ServiceKey};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

#[derive(Clone)]
struct State {
    up: bool,
    /// Bumped to end every open watch stream.
    epoch: u64,
    lists: HashMap<ServiceKey, Vec<ServiceInstance>>,
}

/// An in-process registry whose reachability the test controls.
pub struct FixtureRegistry {
    state: watch::Sender<State>,
    watch_calls: AtomicUsize,
    discover_calls: AtomicUsize,
    watch_delay: Mutex<Duration>,
}

impl FixtureRegistry {
    pub fn new() -> Arc<FixtureRegistry> {
        Arc::new(FixtureRegistry {
            state: watch::Sender::new(State {
                up: true,
                epoch: 0,
                lists: HashMap::new(),
            }),
            watch_calls: AtomicUsize::new(0),
            discover_calls: AtomicUsize::new(0),
            watch_delay: Mutex::new(Duration::ZERO),
        })
    }

    /// Replaces the list of `key`.
    pub fn set(&self, key: &ServiceKey, list: Vec<ServiceInstance>) {
        self.state.send_modify(|s| {
            s.lists.insert(key.clone(), list);
        });
    }

    /// Makes the registry reachable or not; open watches report `Disconnected` while down.
    pub fn set_up(&self, up: bool) {
        self.state.send_modify(|s| s.up = up);
    }

    /// Ends every open watch stream (as a broken connection would).
    pub fn end_watches(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Makes each `watch` call take this long before answering.
    pub fn set_watch_delay(&self, delay: Duration) {
        *self.watch_delay.lock().unwrap() = delay;
    }

    /// `watch` plus `discover` requests so far.
    pub fn requests(&self) -> usize {
        self.watch_calls.load(Ordering::SeqCst) + self.discover_calls.load(Ordering::SeqCst)
    }

    pub fn watch_calls(&self) -> usize {
        self.watch_calls.load(Ordering::SeqCst)
    }

    fn unavailable(&self) -> RegistryError {
        RegistryError::Unavailable {
            registry: "fixture",
            endpoints: "in-process".to_string(),
            message: "the fixture registry is down".to_string(),
        }
    }

    fn check_up(&self) -> Result<(), RegistryError> {
        if self.state.borrow().up {
            Ok(())
        } else {
            Err(self.unavailable())
        }
    }
}

#[async_trait::async_trait]
impl Registry for FixtureRegistry {
    fn backend(&self) -> &'static str {
        "fixture"
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_up()?;
        self.state.send_modify(|s| {
            let list = s.lists.entry(instance.key()).or_default();
            list.retain(|i| i.address() != instance.address());
            list.push(instance.clone());
        });
        Ok(())
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_up()?;
        self.state.send_modify(|s| {
            if let Some(list) = s.lists.get_mut(&instance.key()) {
                list.retain(|i| i.address() != instance.address());
            }
        });
        Ok(())
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.discover_calls.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        Ok(self
            .state
            .borrow()
            .lists
            .get(key)
            .cloned()
            .unwrap_or_default())
    }

    async fn watch(
        &self,
        key: &ServiceKey,
    ) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
        self.watch_calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.watch_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.check_up()?;
        let receiver = self.state.subscribe();
        let epoch = receiver.borrow().epoch;
        let key = key.clone();
        Ok(WatchStream::new(receiver)
            .take_while(move |s| futures::future::ready(s.epoch == epoch))
            .map(move |s| {
                if s.up {
                    WatchEvent::Snapshot(s.lists.get(&key).cloned().unwrap_or_default())
                } else {
                    WatchEvent::Disconnected {
                        reason: "the fixture registry is down".to_string(),
                    }
                }
            })
            .boxed())
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.check_up()?;
        Ok(self.state.borrow().lists.keys().cloned().collect())
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        Ok(())
    }
}

/// The service the tests call.
#[rpc_core::service(name = "test.Echo", version = "1.0.0")]
pub trait Echo {
    /// The serving server's name.
    async fn whoami(&self) -> String;
    /// Sleeps `ms` on slow servers, then answers with the server's name; safe to retry.
    #[idempotent]
    async fn sleep_idempotent(&self, ms: u64) -> String;
    /// Sleeps `ms` on slow servers, then answers with the server's name; not safe to retry.
    async fn sleep(&self, ms: u64) -> String;
    /// Always fails with an application error (the handler panics).
    async fn boom(&self) -> String;
}

/// One server's implementation; counts every call it runs.
#[derive(Clone)]
pub struct EchoImpl {
    pub name: String,
    pub slow: bool,
    pub calls: Arc<AtomicUsize>,
}

impl EchoImpl {
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    async fn nap(&self, ms: u64) -> String {
        self.hit();
        if self.slow {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.name.clone()
    }
}

impl Echo for EchoImpl {
    async fn whoami(&self) -> String {
        self.hit();
        self.name.clone()
    }

    async fn sleep_idempotent(&self, ms: u64) -> String {
        self.nap(ms).await
    }

    async fn sleep(&self, ms: u64) -> String {
        self.nap(ms).await
    }

    async fn boom(&self) -> String {
        self.hit();
        panic!("boom on {}", self.name)
    }
}

/// A running test server.
pub struct TestServer {
    pub name: String,
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
    pub handle: ServerHandle,
}

impl TestServer {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// This server as a registry instance.
    pub fn instance(&self) -> ServiceInstance {
        instance(self.addr)
    }
}

/// Starts an `Echo` server named `name` on `bind` (e.g. `127.0.0.1:0`).
pub async fn serve_on(name: &str, bind: &str, slow: bool) -> TestServer {
    let calls = Arc::new(AtomicUsize::new(0));
    let implementation = EchoImpl {
        name: name.to_string(),
        slow,
        calls: Arc::clone(&calls),
    };
    let handle = rpc_core::Server::builder()
        .bind(bind)
        .serve(EchoServer::new(implementation))
        .drain_grace(Duration::from_millis(500))
        .propagation_grace(Duration::ZERO)
        .start()
        .await
        .expect("test server starts");
    TestServer {
        name: name.to_string(),
        addr: handle.local_addr(),
        calls,
        handle,
    }
}

/// Starts an `Echo` server on a free loopback port.
pub async fn serve(name: &str) -> TestServer {
    serve_on(name, "127.0.0.1:0", false).await
}

/// A loopback address with nothing listening (the port was free a moment ago).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// The `Echo` service key.
pub fn echo_key() -> ServiceKey {
    ServiceKey::new("test.Echo", "1.0.0")
}

/// A registry instance of `Echo` at `addr`.
pub fn instance(addr: SocketAddr) -> ServiceInstance {
    ServiceInstance::new(&echo_key(), addr.ip().to_string(), addr.port())
}

/// Polls `check` every 5 ms until it holds; panics with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
