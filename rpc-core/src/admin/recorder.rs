//! The Prometheus recorder: durations as histograms with buckets fit for RPC latencies.

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds, for every duration metric: 100 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A Prometheus recorder builder that renders durations as histograms with
/// [`DURATION_BUCKETS`], and opens no listener of its own.
pub fn prometheus_builder() -> PrometheusBuilder {
    // Only an empty bucket list is refused, and this one is not empty.
    PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

/// Installs [`prometheus_builder`]'s recorder as the process's global `metrics` recorder
/// and returns the handle that renders it. Fails if a global recorder is already installed.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    prometheus_builder().install_recorder()
}
