//! [`ClusterConfig`]: every setting of balancing, fault tolerance, ejection and discovery.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::balance::{BalancerKind, LoadBalancer, RoundRobin, UnknownBalancer};
use super::directory::DirectoryConfig;
use super::eject::EjectionConfig;
use super::fault::failback::FailbackConfig;
use super::fault::{FaultPolicy, UnknownPolicy};
use crate::backoff::Backoff;

/// Settings for registry clients: how calls are spread over providers and what happens
/// when one fails. Give it to [`ClientBuilder::cluster`](crate::ClientBuilder::cluster).
///
/// ```
/// use std::time::Duration;
/// use rpc_core::cluster::{ClusterConfig, FaultPolicy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClusterConfig::default()
///     .balancer_named("least-loaded")?
///     .policy(FaultPolicy::Failover)
///     .max_attempts(3)
///     .retry_backoff(Duration::from_millis(5), Duration::from_millis(250))
///     .snapshot_file("/var/tmp/consumer-providers.json");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Picks the provider of each call. Default: round-robin.
    pub balancer: Arc<dyn LoadBalancer>,
    /// What a failed call does. Default: [`FaultPolicy::Failover`].
    pub policy: FaultPolicy,
    /// Attempts per call under fail-over, the first included (at least 1). Default: 3.
    pub max_attempts: usize,
    /// Delays between fail-over attempts. Default: 5 ms doubling to 250 ms, jitter 0.5.
    pub retry_backoff: Backoff,
    /// Bounds each attempt, so a hung provider does not use up the whole deadline before
    /// fail-over can try another (a timed-out attempt is retried only for idempotent
    /// methods). Applies to every method. Default: `None`.
    pub attempt_timeout: Option<Duration>,
    /// Bounds each attempt of an `#[idempotent]` method (the shorter of this and
    /// `attempt_timeout` applies), so that fail-over to another provider happens well inside
    /// the call's deadline when one hangs. Default: 3 s, so a 10 s deadline leaves room for
    /// three attempts. `None` (0 in the configuration): only `attempt_timeout` and the
    /// call's deadline bound an attempt.
    pub idempotent_attempt_timeout: Option<Duration>,
    /// Outlier ejection. Default: see [`EjectionConfig`] (on, 3 failures in a row, 1 s
    /// cool-down doubling to 30 s, ping probe).
    pub ejection: EjectionConfig,
    /// The directory. Default: see [`DirectoryConfig`] (no snapshot file, empty protection
    /// on).
    pub directory: DirectoryConfig,
    /// The routing tag of this client's calls when neither the call nor the served call it
    /// is made from has one (`client.tag`). Default: `None` (untagged).
    pub tag: Option<String>,
    /// The fail-back queue. Default: see [`FailbackConfig`] (1024 calls, retried every 1 s
    /// for up to 5 min).
    pub failback: FailbackConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            balancer: Arc::new(RoundRobin),
            policy: FaultPolicy::default(),
            max_attempts: 3,
            retry_backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(250)),
            attempt_timeout: None,
            idempotent_attempt_timeout: Some(Duration::from_secs(3)),
            ejection: EjectionConfig::default(),
            directory: DirectoryConfig::default(),
            failback: FailbackConfig::default(),
            tag: None,
        }
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("balancer", &self.balancer.name())
            .field("policy", &self.policy)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .field("attempt_timeout", &self.attempt_timeout)
            .field(
                "idempotent_attempt_timeout",
                &self.idempotent_attempt_timeout,
            )
            .field("ejection", &self.ejection)
            .field("directory", &self.directory)
            .field("failback", &self.failback)
            .finish()
    }
}

impl ClusterConfig {
    /// Uses `balancer` (any [`LoadBalancer`], built-in or your own).
    pub fn balancer(mut self, balancer: Arc<dyn LoadBalancer>) -> Self {
        self.balancer = balancer;
        self
    }

    /// Uses a built-in strategy with its default settings.
    pub fn balancer_kind(self, kind: BalancerKind) -> Self {
        self.balancer(kind.build())
    }

    /// Uses the built-in strategy named `name` (`round-robin`, `random`, `weighted-random`,
    /// `weighted-round-robin`, `consistent-hash`, `least-loaded`); the error names the bad
    /// value and lists the valid ones.
    pub fn balancer_named(self, name: &str) -> Result<Self, UnknownBalancer> {
        Ok(self.balancer_kind(name.parse()?))
    }

    /// Sets the fault policy.
    pub fn policy(mut self, policy: FaultPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the fault policy named `name` (`failfast`, `failover`, `failsafe`, `failback`);
    /// the error names the bad value and lists the valid ones.
    pub fn policy_named(self, name: &str) -> Result<Self, UnknownPolicy> {
        Ok(self.policy(name.parse()?))
    }

    /// Sets the attempts per call under fail-over (at least 1).
    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the fail-over backoff's first and largest delay (jitter stays as set).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_backoff.base = base;
        self.retry_backoff.max = max;
        self
    }

    /// Bounds each attempt (`None`: only the call's deadline).
    pub fn attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Bounds each attempt of an `#[idempotent]` method (`None`: only `attempt_timeout`
    /// and the call's deadline).
    pub fn idempotent_attempt_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idempotent_attempt_timeout = timeout;
        self
    }

    /// The bound on one attempt of a call to a method that is (or is not) idempotent.
    pub(crate) fn attempt_limit(&self, idempotent: bool) -> Option<Duration> {
        match (self.attempt_timeout, idempotent) {
            (limit, false) => limit,
            (None, true) => self.idempotent_attempt_timeout,
            (Some(limit), true) => Some(
                self.idempotent_attempt_timeout
                    .map_or(limit, |idempotent| idempotent.min(limit)),
            ),
        }
    }

    /// Sets the outlier ejection settings.
    pub fn ejection(mut self, ejection: EjectionConfig) -> Self {
        self.ejection = ejection;
        self
    }

    /// Sets the directory settings.
    pub fn directory(mut self, directory: DirectoryConfig) -> Self {
        self.directory = directory;
        self
    }

    /// Keeps the last known instance lists in this file.
    pub fn snapshot_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.directory.snapshot_file = Some(path.into());
        self
    }

    /// Turns empty protection on or off.
    pub fn empty_protection(mut self, on: bool) -> Self {
        self.directory.empty_protection = on;
        self
    }

    /// Sets the fail-back queue settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.failback = failback;
        self
    }

    /// Sets the routing tag of calls that carry none (`client.tag`).
    pub fn tag(mut self, tag: Option<String>) -> Self {
        self.tag = tag.filter(|t| !t.is_empty());
        self
    }
}

/// The attempts a call gets under `policy`: `max_attempts` under fail-over, else one.
pub(crate) fn attempts_under(policy: FaultPolicy, max_attempts: usize) -> usize {
    match policy {
        FaultPolicy::Failover => max_attempts.max(1),
        FaultPolicy::Failfast | FaultPolicy::Failsafe | FaultPolicy::Failback => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_named_setters() {
        let config = ClusterConfig::default();
        assert_eq!(config.balancer.name(), "round-robin");
        assert_eq!(config.policy, FaultPolicy::Failover);
        assert_eq!(config.max_attempts, 3);
        assert_eq!(attempts_under(config.policy, config.max_attempts), 3);
        assert!(config.ejection.enabled);
        assert!(config.directory.empty_protection);
        assert_eq!(config.attempt_limit(false), None);
        assert_eq!(config.attempt_limit(true), Some(Duration::from_secs(3)));
        let bounded = config.clone().attempt_timeout(Some(Duration::from_secs(1)));
        assert_eq!(bounded.attempt_limit(true), Some(Duration::from_secs(1)));
        assert_eq!(bounded.attempt_limit(false), Some(Duration::from_secs(1)));
        let unbounded = config.clone().idempotent_attempt_timeout(None);
        assert_eq!(unbounded.attempt_limit(true), None);

        let config = config
            .balancer_named("consistent-hash")
            .expect("valid balancer")
            .policy_named("failsafe")
            .expect("valid policy");
        assert_eq!(config.balancer.name(), "consistent-hash");
        assert_eq!(attempts_under(config.policy, config.max_attempts), 1);
        let error = ClusterConfig::default()
            .policy_named("retry-forever")
            .expect_err("bad name");
        assert!(error.to_string().contains("failover"), "{error}");
        assert!(ClusterConfig::default().balancer_named("nope").is_err());
        assert!(format!("{:?}", ClusterConfig::default()).contains("round-robin"));
    }
}
