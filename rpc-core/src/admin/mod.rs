//! Operating a running process: the Prometheus recorder that the admin endpoint serves.
//!
//! The metrics themselves are recorded through the `metrics` facade by the server
//! ([`crate::server::metrics`]) and the client ([`crate::cluster::metrics`]); an application
//! may install any recorder. [`install_prometheus`] installs the one the admin endpoint
//! renders.

mod recorder;

pub use recorder::{install_prometheus, prometheus_builder, DURATION_BUCKETS};
