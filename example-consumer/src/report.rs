//! Counting calls, failures and providers, and printing them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rpc_core::RpcError;

use crate::client_metrics::ClientMetrics;

/// Everything the consumer measured: its own counts of calls and answers, and the client's
/// metrics for what happened underneath (attempts, retries, ejections).
pub struct Report {
    inner: Mutex<Inner>,
    metrics: Option<ClientMetrics>,
}

#[derive(Default)]
struct Inner {
    calls: u64,
    failures: u64,
    latencies_us: Vec<u64>,
    providers: BTreeMap<String, u64>,
    /// Calls per provider since the last progress line.
    window: BTreeMap<String, u64>,
    window_calls: u64,
    errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn new(metrics: Option<ClientMetrics>) -> Report {
        Report {
            inner: Mutex::new(Inner::default()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One call's outcome.
    pub fn record(&self, method: &str, latency: Duration, error: Option<RpcError>) {
        let mut inner = self.lock();
        inner.calls += 1;
        inner.window_calls += 1;
        inner.latencies_us.push(latency.as_micros() as u64);
        if let Some(e) = error {
            inner.failures += 1;
            eprintln!("call failed: {method}: {e}");
            *inner.errors.entry(format!("{method}: {e}")).or_default() += 1;
        }
    }

    /// A call that returned a wrong value.
    pub fn record_wrong(&self, method: &str) {
        let mut inner = self.lock();
        inner.failures += 1;
        *inner
            .errors
            .entry(format!("{method}: wrong result"))
            .or_default() += 1;
    }

    /// A successful `whoami`, attributed to the provider that answered.
    pub fn record_provider(&self, provider: &str, latency: Duration) {
        self.record("Greeter.whoami", latency, None);
        let mut inner = self.lock();
        *inner.providers.entry(provider.to_string()).or_default() += 1;
        *inner.window.entry(provider.to_string()).or_default() += 1;
    }

    pub fn failures(&self) -> u64 {
        self.lock().failures
    }

    pub fn print_summary(&self, elapsed: Duration) {
        let mut inner = self.lock();
        inner.latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            let v = &inner.latencies_us;
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1000.0
        };
        let (p50, p99) = (pct(0.50), pct(0.99));
        let secs = elapsed.as_secs_f64().max(1e-9);
        println!();
        println!("== summary ==");
        println!("{:<24} {:>10}", "calls", inner.calls);
        println!("{:<24} {:>10}", "failed calls", inner.failures);
        println!("{:<24} {:>10.0}", "calls/s", inner.calls as f64 / secs);
        println!("{:<24} {:>10.3}", "p50 latency (ms)", p50);
        println!("{:<24} {:>10.3}", "p99 latency (ms)", p99);
        if let Some(metrics) = &self.metrics {
            let totals = metrics.totals();
            println!();
            println!("client metrics (rpc_client_*, as /metrics shows them)");
            println!("{:<24} {:>10}", "attempts", totals.attempts);
            println!("{:<24} {:>10}", "retries (fail-overs)", totals.retries);
            println!("{:<24} {:>10}", "ejections", totals.ejections);
            println!("{:<24} {:>10}", "readmissions", totals.readmissions);
        }
        let answered: u64 = inner.providers.values().sum();
        if answered > 0 {
            println!();
            println!(
                "{:<24} {:>10} {:>8}",
                "provider (whoami)", "answers", "share"
            );
            for (provider, n) in &inner.providers {
                println!(
                    "{:<24} {:>10} {:>7.1}%",
                    provider,
                    n,
                    100.0 * *n as f64 / answered as f64
                );
            }
        }
        if !inner.errors.is_empty() {
            println!();
            println!("errors:");
            for (error, n) in &inner.errors {
                println!("  {n:>6} x {error}");
            }
        }
        println!();
        println!("result: {} calls, {} failed", inner.calls, inner.failures);
    }
}

/// Prints calls/s and the providers that answered, once a second.
pub async fn progress(report: std::sync::Arc<Report>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut second = 0u64;
    loop {
        tick.tick().await;
        second += 1;
        let (calls, failures, window) = {
            let mut inner = report.lock();
            let calls = std::mem::take(&mut inner.window_calls);
            (calls, inner.failures, std::mem::take(&mut inner.window))
        };
        let providers: Vec<String> = window.iter().map(|(p, n)| format!("{p}={n}")).collect();
        let underneath = report
            .metrics
            .as_ref()
            .map(|m| {
                let totals = m.totals();
                format!(
                    "  retries: {}  ejections: {}",
                    totals.retries, totals.ejections
                )
            })
            .unwrap_or_default();
        println!(
            "[{second:>3}s] {calls:>7} calls/s  failed so far: {failures}{underneath}  answered by: {}",
            if providers.is_empty() {
                "-".to_string()
            } else {
                providers.join(" ")
            }
        );
    }
}

/// Prints the Greeter's provider list whenever the consumer's directory changes it.
pub async fn membership(client: rpc_core::Client) {
    let Some(directory) = client.directory() else {
        return;
    };
    let key = rpc_core::ServiceKey::new("example.Greeter", "1.0.0");
    let Ok(entry) = directory.service(&key).await else {
        return;
    };
    let list = |entry: &rpc_core::cluster::ServiceEntry| -> Vec<String> {
        let mut addrs: Vec<String> = entry.instances().iter().map(|i| i.address()).collect();
        addrs.sort();
        addrs
    };
    let mut known = list(&entry);
    println!(
        "[registry] {key} lists {} providers: {}",
        known.len(),
        known.join(" ")
    );
    let mut generation = entry.generation();
    loop {
        generation = entry.changed_since(generation).await;
        let now = list(&entry);
        for gone in known.iter().filter(|a| !now.contains(a)) {
            println!(
                "[registry] provider {gone} left {key}; {} remain",
                now.len()
            );
        }
        for new in now.iter().filter(|a| !known.contains(a)) {
            println!("[registry] provider {new} joined {key}; {} now", now.len());
        }
        known = now;
    }
}
