//! Consumer-side helpers for tests: a registry client's view of providers, and a load loop
//! that keeps calls in flight and counts what failed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::registry::ServiceKey;
use rpc_core::Client;

use crate::wait::wait_until;

/// The Greeter's service key.
pub fn greeter_key() -> ServiceKey {
    ServiceKey::new("example.Greeter", "1.0.0")
}

/// The Calculator's service key.
pub fn calculator_key() -> ServiceKey {
    ServiceKey::new("example.Calculator", "1.0.0")
}

/// The `"transport"` field of every Greeter node in the registry at `url`, read directly.
pub async fn greeter_transports(url: &str) -> Vec<Option<String>> {
    let registry = rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    let listed = registry
        .discover(&greeter_key())
        .await
        .unwrap_or_else(|e| panic!("cannot list the greeters: {e}"));
    listed.into_iter().map(|i| i.transport).collect()
}

/// The `host:port` of every instance `client`'s directory lists for `key` (looked up first).
pub async fn listed(client: &Client, key: &ServiceKey) -> Vec<String> {
    let Some(directory) = client.directory() else {
        return Vec::new();
    };
    match directory.service(key).await {
        Ok(entry) => {
            let mut addrs: Vec<String> = entry.instances().iter().map(|i| i.address()).collect();
            addrs.sort();
            addrs
        }
        Err(_) => Vec::new(),
    }
}

/// Waits until `client` lists exactly `expected` (in any order) for `key`.
pub async fn wait_listed(
    client: &Client,
    key: &ServiceKey,
    expected: &[String],
    timeout: Duration,
) {
    let mut want: Vec<String> = expected.to_vec();
    want.sort();
    let what = format!("{key} to list {want:?}");
    wait_until(timeout, &what, || {
        let want = want.clone();
        async move { listed(client, key).await == want }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed, with their errors.
    pub failures: Vec<String>,
    /// `whoami` answers by provider.
    pub providers: BTreeMap<String, u64>,
}

impl LoadReport {
    /// Prints what the run saw, and fails the test if any call failed (showing the first few).
    pub fn assert_no_failures(&self) {
        println!("{} calls, answered by {:?}", self.calls, self.providers);
        assert!(
            self.failures.is_empty(),
            "{} failed calls, the first: {:?}",
            self.failures.len(),
            &self.failures[..self.failures.len().min(5)]
        );
    }
}

/// Keeps `concurrency` workers calling `Greeter.hello`, `Calculator.add` and
/// `Greeter.whoami` until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    providers: Arc<Mutex<BTreeMap<String, u64>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the workers.
    pub fn start(client: &Client, concurrency: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let providers = Arc::new(Mutex::new(BTreeMap::new()));
        let workers = (0..concurrency)
            .map(|w| {
                let greeter = GreeterClient::new(client.clone());
                let calc = CalculatorClient::new(client.clone());
                let (stop, calls, failures, providers) = (
                    Arc::clone(&stop),
                    Arc::clone(&calls),
                    Arc::clone(&failures),
                    Arc::clone(&providers),
                );
                tokio::spawn(async move {
                    let mut i = 0i64;
                    let fail =
                        |e: String| failures.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        match greeter.hello(format!("w{w}-{i}")).await {
                            Ok(s) if s == format!("Hello, w{w}-{i}!") => {}
                            Ok(s) => fail(format!("hello returned {s:?}")),
                            Err(e) => fail(format!("hello: {e}")),
                        }
                        match calc.add(i, w as i64).await {
                            Ok(v) if v == i + w as i64 => {}
                            Ok(v) => fail(format!("add returned {v}")),
                            Err(e) => fail(format!("add: {e}")),
                        }
                        match greeter.whoami().await {
                            Ok(p) => {
                                *providers
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .entry(p)
                                    .or_default() += 1
                            }
                            Err(e) => fail(format!("whoami: {e}")),
                        }
                        calls.fetch_add(3, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            calls,
            failures,
            providers,
            workers,
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A reader of the calls made so far, for a task that samples it.
    pub fn counter(&self) -> impl Fn() -> u64 + Send + 'static {
        let calls = Arc::clone(&self.calls);
        move || calls.load(Ordering::Relaxed)
    }

    /// Stops the workers, waits for their last calls, and reports.
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()));
        let providers =
            std::mem::take(&mut *self.providers.lock().unwrap_or_else(|p| p.into_inner()));
        LoadReport {
            calls: self.calls.load(Ordering::Relaxed),
            failures,
            providers,
        }
    }
}
