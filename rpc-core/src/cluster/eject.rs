//! Outlier ejection: an address whose calls fail to connect or time out several times in a
//! row is taken out of rotation for a cool-down that doubles each time it repeats, and let
//! back only after a protocol ping answers.
//!
//! This is what keeps a provider that the registry still lists, but that is dead, from
//! receiving calls. Ejection is per address, so it holds for every service on that address.
//!
//! Only provider faults count: connect failures, lost or silent connections, and timeouts of
//! the attempt's own budget (the attempt decides; a caller's short deadline never reaches
//! here). Refusals (overloaded, goaway, unknown service) neither count nor clear the streak.
//! At most `max_ejected_fraction` of a service's providers are out at once, so ejection never
//! empties a list by itself.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::endpoint::{Endpoint, EndpointState, Members};
use super::outcome::Outcome;
use crate::transport::Pool;

/// Outlier ejection settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EjectionConfig {
    /// Whether ejection is on. Default: `true`.
    pub enabled: bool,
    /// Connect failures or timeouts in a row that eject an address. Default: 3.
    pub consecutive_failures: u32,
    /// The first cool-down; each repeated ejection doubles it. Default: 1 s.
    pub base_cooldown: Duration,
    /// The longest cool-down. Default: 30 s.
    pub max_cooldown: Duration,
    /// How long the readmission ping may take. Default: 1 s.
    pub probe_timeout: Duration,
    /// After this long without an ejection, an address's repeat count starts over.
    /// Default: 5 min.
    pub forget_after: Duration,
    /// The largest share of a service's providers ejected at once, from 0 to 1 (rounded
    /// down: with the default and 3 providers, 1 may be out; with 1 provider, none).
    /// Default: 0.5.
    pub max_ejected_fraction: f64,
}

impl Default for EjectionConfig {
    fn default() -> Self {
        EjectionConfig {
            enabled: true,
            consecutive_failures: 3,
            base_cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(1),
            forget_after: Duration::from_secs(300),
            max_ejected_fraction: 0.5,
        }
    }
}

impl EjectionConfig {
    /// Ejection turned off: dead listed instances keep being tried (fail-over still skips
    /// them within one call).
    pub fn disabled() -> EjectionConfig {
        EjectionConfig {
            enabled: false,
            ..EjectionConfig::default()
        }
    }

    /// Sets the largest share of a service's providers ejected at once (0 to 1).
    pub fn max_ejected_fraction(mut self, fraction: f64) -> EjectionConfig {
        self.max_ejected_fraction = fraction;
        self
    }

    /// The cool-down of the `n`-th ejection in a row (from 1): `base * 2^(n-1)`, capped.
    pub fn cooldown(&self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(31);
        self.base_cooldown
            .saturating_mul(1u32 << shift)
            .min(self.max_cooldown)
    }
}

/// Applies attempt outcomes to address health, and runs readmission probes.
pub(crate) struct Ejector {
    config: EjectionConfig,
    pool: Arc<Pool>,
    ejecting: Mutex<()>,
}

impl Ejector {
    pub(crate) fn new(config: EjectionConfig, pool: Arc<Pool>) -> Ejector {
        Ejector {
            config,
            pool,
            ejecting: Mutex::new(()),
        }
    }

    /// Records one attempt's outcome on `endpoint`, picked from `members`.
    pub(crate) fn record(&self, endpoint: &Endpoint, outcome: Outcome, members: &Members) {
        let state = endpoint.state();
        if outcome == Outcome::Rejected {
            return;
        }
        if outcome.is_outlier_failure() {
            state.failures.fetch_add(1, Ordering::Relaxed);
            let in_a_row = state.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
            if self.config.enabled
                && in_a_row >= self.config.consecutive_failures.max(1)
                && !state.ejected.load(Ordering::Acquire)
            {
                // Counting and ejecting under one lock, so that two ejections at once cannot
                // both pass the cap. Ejections are rare; calls never take this lock.
                let _one_at_a_time = self.ejecting.lock().unwrap_or_else(|p| p.into_inner());
                if self.may_eject(members) && !state.ejected.swap(true, Ordering::AcqRel) {
                    self.eject(state, in_a_row, outcome);
                }
            }
            return;
        }
        if state.consecutive.load(Ordering::Relaxed) != 0 {
            state.consecutive.store(0, Ordering::Relaxed);
        }
        if outcome.answered() && state.ejected.load(Ordering::Relaxed) {
            readmit(state, "a call was answered");
        }
    }

    /// Whether one more of `members` may be ejected under the cap.
    fn may_eject(&self, members: &Members) -> bool {
        let fraction = if self.config.max_ejected_fraction.is_finite() {
            self.config.max_ejected_fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cap = (members.len() as f64 * fraction).floor() as usize;
        let ejected = members
            .endpoints()
            .iter()
            .filter(|e| e.is_ejected())
            .count();
        if ejected >= cap {
            tracing::debug!(
                ejected,
                providers = members.len(),
                "not ejecting another provider: the ejection cap is reached"
            );
            return false;
        }
        true
    }

    fn eject(&self, state: &Arc<EndpointState>, in_a_row: u32, outcome: Outcome) {
        let forgotten = state
            .readmitted_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() >= self.config.forget_after);
        if forgotten {
            state.ejections.store(0, Ordering::Relaxed);
        }
        let repeat = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let cooldown = self.config.cooldown(repeat);
        super::metrics::ejected(state.addr);
        tracing::warn!(
            addr = %state.addr,
            failures_in_a_row = in_a_row,
            last = ?outcome,
            ejection = repeat,
            ?cooldown,
            "ejecting provider: it stops receiving calls until a probe answers"
        );
        tokio::spawn(probe(
            Arc::downgrade(state),
            Arc::downgrade(&self.pool),
            self.config.clone(),
            cooldown,
        ));
    }
}

/// Puts an ejected address back into rotation.
fn readmit(state: &EndpointState, why: &str) {
    state.consecutive.store(0, Ordering::Relaxed);
    *state
        .readmitted_at
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    if state.ejected.swap(false, Ordering::AcqRel) {
        super::metrics::readmitted(state.addr);
        tracing::info!(addr = %state.addr, reason = why, "provider readmitted");
    }
}

/// Waits out the cool-down, then pings; readmits on a pong, else waits a longer cool-down.
/// Ends when the address is readmitted by a real call, leaves every snapshot, or the client
/// is dropped (it holds neither alive).
async fn probe(
    state: Weak<EndpointState>,
    pool: Weak<Pool>,
    config: EjectionConfig,
    mut cooldown: Duration,
) {
    loop {
        tokio::time::sleep(cooldown).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        if !state.ejected.load(Ordering::Acquire) {
            return;
        }
        let addr = state.addr;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let pinged = tokio::time::timeout(config.probe_timeout, async {
            pool.get(addr).await?.ping().await
        })
        .await;
        match pinged {
            Ok(Ok(rtt)) => {
                tracing::debug!(%addr, ?rtt, "probe answered");
                readmit(&state, "a probe ping was answered");
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(%addr, %error, "probe failed; provider stays ejected");
            }
            Err(_) => {
                tracing::debug!(%addr, timeout = ?config.probe_timeout, "probe timed out; provider stays ejected");
            }
        }
        drop(pool);
        let repeat = state.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        cooldown = config.cooldown(repeat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_doubles_and_caps() {
        let config = EjectionConfig {
            base_cooldown: Duration::from_millis(100),
            max_cooldown: Duration::from_millis(500),
            ..EjectionConfig::default()
        };
        let got: Vec<u128> = (1..=5).map(|n| config.cooldown(n).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        assert_eq!(config.cooldown(0).as_millis(), 100);
        assert_eq!(config.cooldown(u32::MAX), config.max_cooldown);
    }
}
