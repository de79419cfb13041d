//! What the client's own metrics say (retries, ejections, …): the consumer installs the
//! Prometheus recorder at start and reads the counters back from it, so its progress line
//! and summary show exactly what `/metrics` would.

use metrics_exporter_prometheus::PrometheusHandle;
use prometheus_parse::{Scrape, Value};
use rpc_core::cluster::metrics as names;

/// The counters the consumer prints, each summed over its labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub attempts: u64,
    pub retries: u64,
    pub ejections: u64,
    pub readmissions: u64,
}

/// Reads the process's client metrics.
#[derive(Clone)]
pub struct ClientMetrics {
    handle: PrometheusHandle,
}

impl ClientMetrics {
    /// Installs the Prometheus recorder as the global one; `None` if one is installed already.
    pub fn install() -> Option<ClientMetrics> {
        match rpc_core::admin::install_prometheus() {
            Ok(handle) => Some(ClientMetrics { handle }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the Prometheus recorder; no client metrics");
                None
            }
        }
    }

    /// The handle that renders the metrics (for the admin endpoint's `/metrics`).
    pub fn handle(&self) -> PrometheusHandle {
        self.handle.clone()
    }

    /// The counters as of now.
    pub fn totals(&self) -> Totals {
        let text = self.handle.render();
        let lines = text.lines().map(|line| Ok(line.to_string()));
        let Ok(scrape) = Scrape::parse(lines) else {
            return Totals::default();
        };
        // Counters are whole numbers; the text form carries them as floats.
        let total = |name: &str| -> u64 {
            let sum: f64 = scrape
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .map(|s| match s.value {
                    Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) => v,
                    _ => 0.0,
                })
                .sum();
            sum as u64
        };
        Totals {
            attempts: total(names::ATTEMPTS),
            retries: total(names::RETRIES),
            ejections: total(names::EJECTIONS),
            readmissions: total(names::READMISSIONS),
        }
    }
}
