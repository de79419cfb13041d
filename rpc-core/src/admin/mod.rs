//! Operating a running process: an admin HTTP endpoint ([`AdminEndpoint`]) with Prometheus
//! metrics, liveness and readiness probes, what the process serves and consumes, and taking a
//! provider out of rotation and back; and the Prometheus recorder it renders.
//!
//! The metrics themselves are recorded through the `metrics` facade by the server
//! ([`crate::server::metrics`]) and the client ([`crate::cluster::metrics`]); an application
//! may install any recorder. [`install_prometheus`] installs the one the endpoint renders.

mod endpoint;
mod recorder;
mod routes;
mod state;

pub use endpoint::AdminEndpoint;
pub use recorder::{install_prometheus, prometheus_builder, DURATION_BUCKETS};
pub use routes::MAX_BODY;

/// The node metadata key under which a provider publishes its admin endpoint's address.
pub const METADATA_KEY: &str = "rpc.admin";
