//! The governance documents in force for one service on a consumer, and what they do to its
//! providers: overrides change the snapshot (disabled addresses, weights), routes narrow each
//! call's choice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::router::{self, CallFacts, Decision, StepOutcome};
use super::{Overrides, Routes};
use crate::cluster::balance::LoadBalancer;
use crate::cluster::config::attempts_under;
use crate::cluster::endpoint::Members;
use crate::cluster::FaultPolicy;
use crate::registry::ServiceInstance;

/// How often the "routing fell back" warning may repeat per service.
const FALLBACK_WARN_EVERY: Duration = Duration::from_secs(10);

/// The last good version of each governance document of a service.
#[derive(Default)]
pub struct InForce {
    overrides: Option<Overrides>,
    routes: Option<Routes>,
    balancer: Option<Arc<dyn LoadBalancer>>,
    /// When the fallback warning was last logged, in ms since `born`.
    warned_at: AtomicU64,
    born: Option<Instant>,
}

impl std::fmt::Debug for InForce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InForce")
            .field("overrides", &self.overrides)
            .field("routes", &self.routes)
            .finish()
    }
}

/// Which of a snapshot's endpoints one call may reach.
#[derive(Debug)]
pub(crate) enum Routing {
    /// Every endpoint (no rule applies): the hot path, nothing allocated.
    All,
    /// The endpoints whose flag is set.
    Only(Vec<bool>),
    /// A forcing rule matched no provider.
    None(Decision),
}

impl InForce {
    /// The documents in force (either may be absent).
    pub fn new(overrides: Option<Overrides>, routes: Option<Routes>) -> InForce {
        let balancer = overrides
            .as_ref()
            .and_then(|o| o.service.balancer_kind())
            .map(|kind| kind.build());
        InForce {
            overrides: overrides.filter(|o| o != &Overrides::default()),
            routes: routes.filter(|r| r != &Routes::default()),
            balancer,
            warned_at: AtomicU64::new(0),
            born: Some(Instant::now()),
        }
    }

    /// The overrides in force.
    pub fn overrides(&self) -> Option<&Overrides> {
        self.overrides.as_ref()
    }

    /// The routes in force.
    pub fn routes(&self) -> Option<&Routes> {
        self.routes.as_ref()
    }

    /// The balancer the overrides name, if any.
    pub(crate) fn balancer(&self) -> Option<&dyn LoadBalancer> {
        self.balancer.as_deref()
    }

    /// The attempts per call under the overrides' `policy` and `max_attempts`, given the
    /// configured ones.
    pub(crate) fn attempts(&self, policy: FaultPolicy, max_attempts: usize) -> usize {
        let max = self
            .overrides
            .as_ref()
            .and_then(|o| o.service.max_attempts)
            .map_or(max_attempts, |n| n as usize);
        attempts_under(self.policy().unwrap_or(policy), max)
    }

    /// The fault policy the overrides name, if any.
    pub(crate) fn policy(&self) -> Option<FaultPolicy> {
        self.overrides
            .as_ref()
            .and_then(|o| o.service.fault_policy())
    }

    /// The whole-call budget the overrides set, if any.
    pub fn deadline(&self) -> Option<Duration> {
        self.overrides
            .as_ref()
            .and_then(|o| o.service.deadline_ms)
            .map(Duration::from_millis)
    }

    /// `members` with the overrides applied: disabled addresses flagged (never picked),
    /// weights replaced. The endpoints keep their shared statistics.
    pub(crate) fn govern(&self, members: &Members) -> Members {
        let endpoints = members
            .endpoints()
            .iter()
            .map(|endpoint| {
                let instance = members.instance(endpoint);
                let registered = instance.map_or(endpoint.weight(), |i| i.weight);
                let address = instance.map(ServiceInstance::address);
                let overridden = address.as_deref().and_then(|a| {
                    let o = self.overrides.as_ref()?;
                    Some((o.weight(a), o.is_disabled(a)))
                });
                let (weight, disabled) = match overridden {
                    Some((weight, disabled)) => (weight.unwrap_or(registered), disabled),
                    None => (registered, false),
                };
                endpoint.governed(weight, disabled)
            })
            .collect();
        Members::new(Arc::clone(members.instances()), endpoints)
    }

    /// Which endpoints of `members` a call with `facts` may reach under the routes and tag
    /// routing. A step that matched nothing and fell back is logged, rate-limited.
    pub(crate) fn route(&self, service: &str, members: &Members, facts: &CallFacts<'_>) -> Routing {
        let tagged_call = facts.tag.is_some_and(|t| !t.is_empty());
        if self.routes.is_none() && !members.has_tagged() && !tagged_call {
            return Routing::All;
        }
        let providers: Vec<&ServiceInstance> = members
            .endpoints()
            .iter()
            .filter_map(|e| members.instance(e))
            .collect();
        if providers.len() != members.len() {
            // An endpoint without its instance cannot happen; route nothing out rather
            // than misalign the mask.
            return Routing::All;
        }
        let routed = router::route(None, self.routes.as_ref(), &providers, facts);
        let forced = routed.decision.tag.1 == StepOutcome::ForcedEmpty
            || matches!(
                routed.decision.condition,
                Some((_, StepOutcome::ForcedEmpty))
            );
        if forced {
            return Routing::None(routed.decision);
        }
        if routed.decision.fell_back() {
            self.warn_fallback(service, facts, &routed.decision);
        }
        let mut mask = vec![false; providers.len()];
        for index in routed.selected {
            if let Some(slot) = mask.get_mut(index) {
                *slot = true;
            }
        }
        Routing::Only(mask)
    }

    fn warn_fallback(&self, service: &str, facts: &CallFacts<'_>, decision: &Decision) {
        let Some(born) = self.born else { return };
        let now = born.elapsed().as_millis() as u64 + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        let every = FALLBACK_WARN_EVERY.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < every {
            return;
        }
        if self
            .warned_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                service,
                method = facts.method,
                tag = facts.tag.unwrap_or(""),
                %decision,
                "routing matched no provider and fell back to the unfiltered list (logged at most every {FALLBACK_WARN_EVERY:?})"
            );
        }
    }
}
