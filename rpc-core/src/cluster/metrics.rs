//! The consumer's metrics, through the `metrics` facade (the application installs the
//! recorder). Names follow the OpenTelemetry RPC semantic conventions in their Prometheus
//! form; durations are seconds.
//!
//! Labels are bounded: at most [`MAX_CALL_LABELS`] distinct (`rpc_service`, `rpc_method`)
//! pairs per process get their own series; calls of any further pair are counted under
//! [`OTHER`]. `server_address` is a provider the directory listed, `rpc_response_status_code`
//! the numeric status (or [`NO_STATUS`] when no answer came). No request data becomes a label.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use ::metrics::{Counter, Histogram};

use crate::call::Call;
use crate::metric_handles::{status_label, with_handle, HandleCache};
use crate::RpcError;

/// Attempt duration, seconds, by `rpc_service`, `rpc_method`, `rpc_response_status_code`,
/// `server_address`.
pub const CALL_DURATION: &str = "rpc_client_call_duration_seconds";
/// Attempts sent, by `rpc_service`.
pub const ATTEMPTS: &str = "rpc_client_attempts_total";
/// Attempts after the first of a call (each one fails over to another provider), by
/// `rpc_service`.
pub const RETRIES: &str = "rpc_client_retries_total";
/// Fail-back events by `rpc_service` and `outcome`: `queued`, `dropped` (queue full or not
/// safe to resend), `delivered`, `given_up`.
pub const FAILBACK: &str = "rpc_client_failback_total";
/// Watch interruptions (the registry unreachable or the stream broken), by `rpc_service`.
pub const WATCH_DISCONNECTS: &str = "rpc_client_watch_disconnects_total";
/// Full lists received after an interruption (the directory resynced), by `rpc_service`.
pub const WATCH_RESYNCS: &str = "rpc_client_watch_resyncs_total";
/// Providers taken out of rotation after failures in a row, by `server_address`.
pub const EJECTIONS: &str = "rpc_client_ejections_total";
/// Ejected providers put back into rotation, by `server_address`.
pub const READMISSIONS: &str = "rpc_client_readmissions_total";

/// How many (`rpc_service`, `rpc_method`) pairs get series of their own.
pub const MAX_CALL_LABELS: usize = 256;
/// The label value standing for every pair past [`MAX_CALL_LABELS`].
pub const OTHER: &str = "_other";
/// The status label of an attempt that got no answer (connection failed or closed).
pub const NO_STATUS: &str = "none";

type Pair = (Arc<str>, Arc<str>);

/// An attempt's series: service key, method, status label and provider.
type AttemptLabels = (ByteString, ByteString, &'static str, SocketAddr);

/// The label maps are read on every call: a fast hasher (seeded per process), not SipHash.
type LabelMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The label values of a call's pair, capped.
fn call_labels(call: &Call) -> Pair {
    static SEEN: OnceLock<RwLock<LabelMap<(ByteString, ByteString), Pair>>> = OnceLock::new();
    let seen = SEEN.get_or_init(RwLock::default);
    let key = (call.service_key.clone(), call.method_name.clone());
    if let Some(pair) = seen.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return pair.clone();
    }
    let mut seen = seen.write().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= MAX_CALL_LABELS {
        return (Arc::from(OTHER), Arc::from(OTHER));
    }
    let pair: Pair = (Arc::from(&*key.0), Arc::from(&*key.1));
    seen.entry(key).or_insert(pair).clone()
}

/// How many provider addresses get a `server_address` label string kept for reuse; past
/// that, the label is formatted per attempt (still bounded by the directory's size).
const MAX_ADDRESS_LABELS: usize = 4_096;

/// The `server_address` label of `addr`, formatted once: formatting a socket address per
/// call cost more than the rest of the metrics together.
fn address_label(addr: SocketAddr) -> Arc<str> {
    static SEEN: OnceLock<RwLock<LabelMap<SocketAddr, Arc<str>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(RwLock::default);
    if let Some(label) = seen.read().unwrap_or_else(|p| p.into_inner()).get(&addr) {
        return Arc::clone(label);
    }
    let label: Arc<str> = Arc::from(addr.to_string());
    let mut seen = seen.write().unwrap_or_else(|p| p.into_inner());
    if seen.len() < MAX_ADDRESS_LABELS {
        seen.entry(addr).or_insert_with(|| Arc::clone(&label));
    }
    label
}

/// Records one attempt of `call` on `addr` that ended with `result` after `elapsed`.
pub(crate) fn attempt_finished(
    call: &Call,
    addr: SocketAddr,
    result: &Result<Bytes, RpcError>,
    elapsed: Duration,
) {
    let status = match result {
        Ok(_) => status_label(crate::Status::Ok),
        Err(error) => error.status().map_or(NO_STATUS, status_label),
    };
    thread_local! {
        static HANDLES: RefCell<HandleCache<AttemptLabels, (Counter, Histogram)>> =
            RefCell::new(HandleCache::new());
    }
    let labels = (
        call.service_key.clone(),
        call.method_name.clone(),
        status,
        addr,
    );
    let register = || {
        let (service, method) = call_labels(call);
        let attempts = ::metrics::counter!(ATTEMPTS, "rpc_service" => service.clone());
        let duration = ::metrics::histogram!(
            CALL_DURATION,
            "rpc_service" => service,
            "rpc_method" => method,
            "rpc_response_status_code" => status,
            "server_address" => address_label(addr),
        );
        (attempts, duration)
    };
    with_handle(&HANDLES, labels, register, |(attempts, duration)| {
        attempts.increment(1);
        duration.record(elapsed.as_secs_f64());
    });
}

/// Records that a call moves on to another attempt.
pub(crate) fn retried(call: &Call) {
    let (service, _) = call_labels(call);
    ::metrics::counter!(RETRIES, "rpc_service" => service).increment(1);
}

/// Records a fail-back event of `call`.
pub(crate) fn failback(call: &Call, outcome: &'static str) {
    let (service, _) = call_labels(call);
    ::metrics::counter!(FAILBACK, "rpc_service" => service, "outcome" => outcome).increment(1);
}

/// Records a watch interruption for `service` (a key the directory watches: bounded by
/// `max_watches`).
pub(crate) fn watch_disconnected(service: &str) {
    ::metrics::counter!(WATCH_DISCONNECTS, "rpc_service" => service.to_owned()).increment(1);
}

/// Records a resync of `service`'s list after an interruption.
pub(crate) fn watch_resynced(service: &str) {
    ::metrics::counter!(WATCH_RESYNCS, "rpc_service" => service.to_owned()).increment(1);
}

/// Records an ejection.
pub(crate) fn ejected(addr: SocketAddr) {
    ::metrics::counter!(EJECTIONS, "server_address" => address_label(addr)).increment(1);
}

/// Records a readmission.
pub(crate) fn readmitted(addr: SocketAddr) {
    ::metrics::counter!(READMISSIONS, "server_address" => address_label(addr)).increment(1);
}
