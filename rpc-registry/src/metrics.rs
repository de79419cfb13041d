//! The registry clients' metrics, through the `metrics` facade (the application installs the
//! recorder), labelled by `backend` only (`etcd`, `zookeeper`): no unbounded labels.

/// 1 while the backend's lease or session is connected and kept alive, else 0.
pub const CONNECTED: &str = "rpc_registry_connected";
/// Lease keep-alives answered (etcd).
pub const RENEWALS: &str = "rpc_registry_lease_renewals_total";
/// Leases (etcd) or sessions (ZooKeeper) lost, after which every node is registered again.
pub const LOSSES: &str = "rpc_registry_lease_losses_total";

pub(crate) fn connected(backend: &'static str, up: bool) {
    ::metrics::gauge!(CONNECTED, "backend" => backend).set(if up { 1.0 } else { 0.0 });
}

pub(crate) fn renewed(backend: &'static str) {
    ::metrics::counter!(RENEWALS, "backend" => backend).increment(1);
}

pub(crate) fn lost(backend: &'static str) {
    ::metrics::counter!(LOSSES, "backend" => backend).increment(1);
}
