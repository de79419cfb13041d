//! Live traffic per provider from its admin endpoint's `/metrics` (the `rpc.admin` metadata
//! it publishes): calls per second, the share that failed, and p99, all over the time
//! between two scrapes of the same endpoint (the page refreshes; the first look shows
//! totals only). Every scrape is bounded in time and size, and so is what is remembered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hyper::Method;
use prometheus_parse::{Scrape, Value as Sample};
use rpc_core::{ServiceInstance, ServiceKey};
use serde_json::{json, Value};

use crate::commands::admin;

/// How long one provider's `/metrics` may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The largest `/metrics` page read.
const MAX_PAGE: usize = 2 * 1024 * 1024;
/// The most providers of one service scraped per page load.
const MAX_SCRAPED: usize = 64;
/// The most endpoints remembered; past it the memory starts over.
const MAX_REMEMBERED: usize = 4096;
/// The server-side call metric (seconds).
const CALL_DURATION: &str = "rpc_server_call_duration_seconds";
/// The status label value of a call answered OK.
const OK_STATUS: &str = "0";

/// Cumulative counts of one service on one endpoint at one moment.
#[derive(Debug, Clone, Default)]
struct Totals {
    calls: f64,
    failed: f64,
    /// `(upper bound in seconds, cumulative count)`, ascending.
    buckets: Vec<(f64, f64)>,
}

/// What was seen at the last scrape of each `(endpoint, service)`.
#[derive(Default)]
pub(crate) struct Scraper {
    last: Mutex<HashMap<(String, String), (Instant, Totals)>>,
}

impl Scraper {
    /// The traffic of each provider of `key` that publishes an admin address, by provider
    /// address: `{"qps", "error_rate", "p99_ms", "calls"}` or `{"error"}`.
    pub(crate) async fn scrape(
        &self,
        key: &ServiceKey,
        instances: &[ServiceInstance],
    ) -> HashMap<String, Value> {
        let service = key.to_string();
        let endpoints: Vec<(String, String)> = instances
            .iter()
            .filter_map(|i| {
                let admin = i.metadata.get(rpc_core::admin::METADATA_KEY)?;
                Some((i.address(), admin.clone()))
            })
            .take(MAX_SCRAPED)
            .collect();
        let pages = join_all(endpoints.iter().map(|(_, admin)| {
            admin::send_bounded(admin, Method::GET, "/metrics", SCRAPE_TIMEOUT, MAX_PAGE)
        }))
        .await;
        let now = Instant::now();
        let mut out = HashMap::new();
        for ((address, admin), page) in endpoints.into_iter().zip(pages) {
            let value = match page {
                Ok((200, body)) => match totals(&body, &service) {
                    Some(totals) => self.rates(&admin, &service, now, totals),
                    None => json!({ "error": format!("{admin}/metrics does not parse") }),
                },
                Ok((status, _)) => json!({ "error": format!("{admin}/metrics: {status}") }),
                Err(e) => json!({ "error": e.to_string() }),
            };
            out.insert(address, value);
        }
        out
    }

    /// Rates against the previous scrape of the same endpoint and service.
    fn rates(&self, admin: &str, service: &str, now: Instant, totals: Totals) -> Value {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.len() >= MAX_REMEMBERED {
            last.clear();
        }
        let entry = (admin.to_string(), service.to_string());
        let previous = last.insert(entry, (now, totals.clone()));
        let mut value =
            json!({ "calls": totals.calls, "qps": null, "error_rate": null, "p99_ms": null });
        let Some((then, before)) = previous else {
            return value;
        };
        let secs = now.duration_since(then).as_secs_f64();
        let calls = totals.calls - before.calls;
        if secs <= 0.0 || calls < 0.0 {
            // A restarted process starts its counters over: no rate this time.
            return value;
        }
        value["qps"] = json!(calls / secs);
        if calls > 0.0 {
            value["error_rate"] = json!((totals.failed - before.failed) / calls);
            value["p99_ms"] = json!(quantile(&before.buckets, &totals.buckets, 0.99) * 1000.0);
        }
        value
    }
}

/// The cumulative counts of `service` in a `/metrics` page, over every method and status.
fn totals(page: &str, service: &str) -> Option<Totals> {
    let scrape = Scrape::parse(page.lines().map(|l| Ok(l.to_string()))).ok()?;
    let mut totals = Totals::default();
    for sample in &scrape.samples {
        if sample.metric != CALL_DURATION || sample.labels.get("rpc_service") != Some(service) {
            continue;
        }
        let Sample::Histogram(buckets) = &sample.value else {
            continue;
        };
        let count = buckets
            .iter()
            .find(|b| b.less_than.is_infinite())
            .map_or(0.0, |b| b.count);
        totals.calls += count;
        if sample.labels.get("rpc_response_status_code") != Some(OK_STATUS) {
            totals.failed += count;
        }
        for bucket in buckets {
            match totals
                .buckets
                .iter_mut()
                .find(|(le, _)| *le == bucket.less_than)
            {
                Some((_, total)) => *total += bucket.count,
                None => totals.buckets.push((bucket.less_than, bucket.count)),
            }
        }
    }
    totals.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(totals)
}

/// The `q` quantile, in seconds, of the calls between two cumulative histograms,
/// interpolated within its bucket as Prometheus's `histogram_quantile` does.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|&(le, count)| {
            let old = before
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c);
            (le, (count - old).max(0.0))
        })
        .collect();
    let total = delta.last().map_or(0.0, |&(_, c)| c);
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in &delta {
        if count >= rank {
            if le.is_infinite() {
                return lower;
            }
            let within = count - below;
            let fraction = if within > 0.0 {
                (rank - below) / within
            } else {
                1.0
            };
            return lower + (le - lower) * fraction;
        }
        (lower, below) = (le, count);
    }
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# TYPE rpc_server_call_duration_seconds histogram
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"0\",le=\"0.001\"} 90
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"0\",le=\"0.01\"} 99
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"0\",le=\"+Inf\"} 100
rpc_server_call_duration_seconds_sum{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"0\"} 0.2
rpc_server_call_duration_seconds_count{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"0\"} 100
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"4\",le=\"0.001\"} 0
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"4\",le=\"0.01\"} 0
rpc_server_call_duration_seconds_bucket{rpc_service=\"s:1\",rpc_method=\"m\",rpc_response_status_code=\"4\",le=\"+Inf\"} 10
rpc_server_call_duration_seconds_bucket{rpc_service=\"other:1\",rpc_method=\"m\",rpc_response_status_code=\"4\",le=\"+Inf\"} 1000
";

    #[test]
    fn totals_count_one_service_and_its_failures() {
        let totals = totals(PAGE, "s:1").unwrap();
        assert_eq!(totals.calls, 110.0);
        assert_eq!(totals.failed, 10.0);
        assert_eq!(totals.buckets.len(), 3);
    }

    #[test]
    fn rates_come_from_two_scrapes() {
        let scraper = Scraper::default();
        let t0 = Instant::now();
        let first = scraper.rates("a", "s:1", t0, Totals::default());
        assert!(first["qps"].is_null());
        let later = totals(PAGE, "s:1").unwrap();
        let second = scraper.rates("a", "s:1", t0 + Duration::from_secs(2), later);
        assert_eq!(second["qps"], 55.0);
        assert!((second["error_rate"].as_f64().unwrap() - 10.0 / 110.0).abs() < 1e-9);
        // 99% of 110 = 108.9: past the 99 under 10 ms, in the +Inf bucket: its lower bound.
        assert_eq!(second["p99_ms"], 10.0);
    }

    #[test]
    fn quantile_interpolates_within_a_bucket() {
        let after = [(0.001, 50.0), (0.01, 100.0), (f64::INFINITY, 100.0)];
        let p50 = quantile(&[], &after, 0.5);
        assert!((p50 - 0.001).abs() < 1e-12);
        let p75 = quantile(&[], &after, 0.75);
        assert!((p75 - 0.0055).abs() < 1e-9, "{p75}");
    }
}
