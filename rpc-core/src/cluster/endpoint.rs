//! Endpoints: the parsed, callable form of registry instances, with the live statistics that
//! balancers and ejection read on every call. A [`Members`] is one immutable snapshot of a
//! service's endpoints; a new one is built each time the registry's list changes.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::outcome::Outcome;
use crate::registry::ServiceInstance;

/// Weight of the newest latency sample in the moving average.
const EWMA_ALPHA: f64 = 0.3;

/// The latency average halves for every this many seconds without a sample (times ln 2),
/// so an endpoint avoided after a slow answer is tried again and re-measured.
const EWMA_DECAY_SECS: f64 = 10.0;

/// The latency sample an attempt that failed on the provider's side (an error other than
/// the application's, a refusal, no connection, silence) counts as, at least: a provider
/// that fails fast must not look fast to a latency-based balancer.
const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// Nanoseconds since the first use, for cheap atomic timestamps. Tokio's clock, so paused
/// time in tests moves it too.
fn now_nanos() -> u64 {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Called with an address when no snapshot references it any more.
pub(crate) type RemovalHook = Arc<dyn Fn(SocketAddr) + Send + Sync>;

/// One provider address of a service, as balancers see it. Cheap to clone.
///
/// The statistics (in-flight calls, latency, ejection) belong to the address, so they are
/// shared by every service key and every snapshot that lists it.
#[derive(Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    weight: u32,
    /// An operator disabled this address (governance overrides): no balancer picks it.
    disabled: bool,
    index: usize,
    state: Arc<EndpointState>,
}

impl Endpoint {
    /// The provider's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The weight: a governance override's, else the instance data's (default 100).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether a governance override disabled this address; it is never picked.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The same endpoint (sharing its statistics) with another weight and disabled flag.
    pub(crate) fn governed(&self, weight: u32, disabled: bool) -> Endpoint {
        Endpoint {
            weight,
            disabled,
            ..self.clone()
        }
    }

    /// The position of this endpoint's instance in [`Members::instances`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Calls in flight to this address right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// The moving average of attempts' latency, decaying towards zero while no attempt
    /// ends; `None` before the first. A failed attempt counts at least 1 s, so errors and
    /// silence weigh as cost.
    pub fn latency(&self) -> Option<Duration> {
        let micros = self.state.latency_micros(now_nanos());
        (micros > 0.0).then(|| Duration::from_secs_f64(micros / 1e6))
    }

    /// How long calls have been in flight to this address without any of them ending: zero
    /// when none is in flight or one ended just now, growing while a provider hangs.
    pub fn silence(&self) -> Duration {
        self.state.silence(now_nanos())
    }

    /// Whether the last attempt that ended here failed on the provider's side (anything but
    /// a value or an application error).
    pub fn last_failed(&self) -> bool {
        self.state.last_failed.load(Ordering::Relaxed)
    }

    /// Whether outlier ejection has taken this address out of rotation.
    pub fn is_ejected(&self) -> bool {
        self.state.ejected.load(Ordering::Relaxed)
    }

    /// Attempts sent to this address since it was first listed.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    /// Attempts to this address that failed to connect or timed out.
    pub fn failures(&self) -> u64 {
        self.state.failures.load(Ordering::Relaxed)
    }

    /// How many times this address has been ejected.
    pub fn ejections(&self) -> u32 {
        self.state.ejections.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> &Arc<EndpointState> {
        &self.state
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("addr", &self.addr)
            .field("weight", &self.weight)
            .field("disabled", &self.disabled)
            .field("in_flight", &self.in_flight())
            .field("ejected", &self.is_ejected())
            .finish()
    }
}

/// The live statistics of one address.
pub(crate) struct EndpointState {
    pub(crate) addr: SocketAddr,
    pub(crate) in_flight: AtomicUsize,
    /// An `f64` of microseconds; 0 until the first answer.
    ewma_micros: AtomicU64,
    /// When `ewma_micros` was last updated ([`now_nanos`]).
    ewma_at: AtomicU64,
    pub(crate) calls: AtomicU64,
    pub(crate) failures: AtomicU64,
    /// When `in_flight` last rose from zero ([`now_nanos`]).
    busy_since: AtomicU64,
    /// When an attempt last ended with an answer ([`now_nanos`]).
    answered_at: AtomicU64,
    /// Whether the last attempt to end failed on the provider's side.
    last_failed: AtomicBool,
    /// Connect failures and timeouts in a row.
    pub(crate) consecutive: AtomicU32,
    pub(crate) ejected: AtomicBool,
    pub(crate) ejections: AtomicU32,
    /// When the address was last let back in, for forgetting old ejections.
    pub(crate) readmitted_at: Mutex<Option<Instant>>,
    on_removed: Option<RemovalHook>,
}

impl EndpointState {
    fn new(addr: SocketAddr, on_removed: Option<RemovalHook>) -> EndpointState {
        EndpointState {
            addr,
            in_flight: AtomicUsize::new(0),
            ewma_micros: AtomicU64::new(0f64.to_bits()),
            ewma_at: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            answered_at: AtomicU64::new(0),
            last_failed: AtomicBool::new(false),
            consecutive: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejections: AtomicU32::new(0),
            readmitted_at: Mutex::new(None),
            on_removed,
        }
    }

    /// The decayed moving average at time `now` (nanoseconds from [`now_nanos`]).
    fn latency_micros(&self, now: u64) -> f64 {
        let micros = f64::from_bits(self.ewma_micros.load(Ordering::Relaxed));
        if micros <= 0.0 {
            return 0.0;
        }
        let at = self.ewma_at.load(Ordering::Relaxed);
        let idle = now.saturating_sub(at) as f64 / 1e9;
        micros * (-idle / EWMA_DECAY_SECS).exp()
    }

    /// Counts an attempt starting.
    pub(crate) fn begin_attempt(&self) {
        if self.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            self.busy_since.store(now_nanos(), Ordering::Relaxed);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt ending; `answered` if the provider said anything about it.
    pub(crate) fn end_attempt(&self, answered: bool) {
        if answered {
            self.answered_at.store(now_nanos(), Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts an attempt ending with `outcome` after `latency`. An application error is an
    /// answer like a value (the provider is healthy); any other failure enters the latency
    /// average as at least [`FAILURE_PENALTY`].
    pub(crate) fn finish_attempt(
        &self,
        outcome: Outcome,
        application_error: bool,
        latency: Duration,
    ) {
        self.end_attempt(outcome.answered() || outcome == Outcome::Rejected);
        let failed = outcome != Outcome::Success && !application_error;
        self.last_failed.store(failed, Ordering::Relaxed);
        if failed {
            self.observe_latency(latency.max(FAILURE_PENALTY));
        } else {
            self.observe_latency(latency);
        }
    }

    fn silence(&self, now: u64) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            return Duration::ZERO;
        }
        let since = self
            .busy_since
            .load(Ordering::Relaxed)
            .max(self.answered_at.load(Ordering::Relaxed));
        Duration::from_nanos(now.saturating_sub(since))
    }

    /// Folds one attempt's latency into the moving average. Racing updates may lose a
    /// sample, which an average can afford.
    pub(crate) fn observe_latency(&self, latency: Duration) {
        let now = now_nanos();
        let sample = (latency.as_secs_f64() * 1e6).max(1.0);
        let old = self.latency_micros(now);
        let new = if old > 0.0 {
            old + EWMA_ALPHA * (sample - old)
        } else {
            sample
        };
        self.ewma_micros.store(new.to_bits(), Ordering::Relaxed);
        self.ewma_at.store(now, Ordering::Relaxed);
    }
}

impl Drop for EndpointState {
    fn drop(&mut self) {
        if let Some(hook) = &self.on_removed {
            hook(self.addr);
        }
    }
}

/// One immutable snapshot of a service's providers: the registry's instance list and the
/// endpoints parsed from it once, plus a slot for the balancer's per-snapshot state (a hash
/// ring, a weighted sequence), built on first use and dropped with the snapshot.
pub struct Members {
    instances: Arc<Vec<ServiceInstance>>,
    endpoints: Vec<Endpoint>,
    /// Whether any instance declares a routing tag (then untagged calls must be routed).
    tagged: bool,
    balancer_state: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Members {
    /// An empty snapshot.
    pub fn empty() -> Members {
        Members::new(Arc::new(Vec::new()), Vec::new())
    }

    pub(crate) fn new(instances: Arc<Vec<ServiceInstance>>, endpoints: Vec<Endpoint>) -> Members {
        let tagged = instances
            .iter()
            .any(|i| crate::cluster::governance::router::provider_tag(i).is_some());
        Members {
            instances,
            endpoints,
            tagged,
            balancer_state: OnceLock::new(),
        }
    }

    /// Whether any instance declares a routing tag (`rpc.tag` metadata).
    pub fn has_tagged(&self) -> bool {
        self.tagged
    }

    /// The instances as the registry listed them, unusable ones included.
    pub fn instances(&self) -> &Arc<Vec<ServiceInstance>> {
        &self.instances
    }

    /// The callable endpoints, in registry order, one per distinct address.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The instance an endpoint was parsed from.
    pub fn instance(&self, endpoint: &Endpoint) -> Option<&ServiceInstance> {
        self.instances.get(endpoint.index)
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there is no endpoint.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Runs `use_state` on this snapshot's balancer state of type `T`, building it with `init`
    /// on first use. The state lives as long as the snapshot, so it is rebuilt exactly when
    /// the membership changes. If the slot already holds another type (two balancers sharing
    /// one snapshot), the state is built afresh for this call.
    pub fn with_state<T, R>(
        &self,
        init: impl Fn(&Members) -> T,
        use_state: impl FnOnce(&T) -> R,
    ) -> R
    where
        T: Any + Send + Sync,
    {
        let slot = self.balancer_state.get_or_init(|| Box::new(init(self)));
        match slot.downcast_ref::<T>() {
            Some(state) => use_state(state),
            None => use_state(&init(self)),
        }
    }
}

impl fmt::Debug for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Members")
            .field("endpoints", &self.endpoints)
            .field("instances", &self.instances.len())
            .finish()
    }
}

/// One [`EndpointState`] per address while any snapshot lists it.
#[derive(Default)]
pub(crate) struct EndpointTable {
    states: Mutex<HashMap<SocketAddr, Weak<EndpointState>>>,
    on_removed: Option<RemovalHook>,
}

impl EndpointTable {
    pub(crate) fn new(on_removed: Option<RemovalHook>) -> EndpointTable {
        EndpointTable {
            states: Mutex::new(HashMap::new()),
            on_removed,
        }
    }

    /// Builds endpoints for `(instance index, address, weight)` triples, reusing the live
    /// state of addresses already known.
    pub(crate) fn endpoints(
        &self,
        parsed: impl IntoIterator<Item = (usize, SocketAddr, u32)>,
    ) -> Vec<Endpoint> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.retain(|_, state| state.strong_count() > 0);
        parsed
            .into_iter()
            .map(|(index, addr, weight)| {
                let state = match states.get(&addr).and_then(Weak::upgrade) {
                    Some(state) => state,
                    None => {
                        let state = Arc::new(EndpointState::new(addr, self.on_removed.clone()));
                        states.insert(addr, Arc::downgrade(&state));
                        state
                    }
                };
                Endpoint {
                    addr,
                    weight,
                    disabled: false,
                    index,
                    state,
                }
            })
            .collect()
    }
}

/// Test helpers: snapshots from plain addresses.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::registry::ServiceKey;

    /// A snapshot of `127.0.0.1:<port>` endpoints with the given weights.
    pub(crate) fn members(ports_and_weights: &[(u16, u32)]) -> Members {
        let key = ServiceKey::new("test.Svc", "1.0.0");
        let instances: Vec<ServiceInstance> = ports_and_weights
            .iter()
            .map(|&(port, weight)| {
                let mut i = ServiceInstance::new(&key, "127.0.0.1", port);
                i.weight = weight;
                i
            })
            .collect();
        let table = EndpointTable::default();
        let endpoints = table.endpoints(
            instances
                .iter()
                .enumerate()
                .map(|(index, i)| (index, SocketAddr::from(([127, 0, 0, 1], i.port)), i.weight)),
        );
        Members::new(Arc::new(instances), endpoints)
    }
}
