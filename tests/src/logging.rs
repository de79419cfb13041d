//! Logs for tests: `tracing` output captured per test (shown for failing tests), filtered by
//! `RUST_LOG` (default `info`).

/// Installs the test subscriber once per test binary; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
