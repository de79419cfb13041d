//! Fault tolerance: what a call does when an attempt fails, chosen by [`FaultPolicy`]. The
//! attempt loop that every policy runs (fail-over with one attempt or several) is the
//! cluster's `attempts` module; this one holds what a policy adds after it.
//!
//! Only errors that are safe to retry are retried ([`RpcError::is_retryable`]): connection
//! refused or reset, goaway, shutting down, overloaded; a timeout only when the method is
//! marked `#[idempotent]`; an application error never.
//!
//! [`RpcError::is_retryable`]: crate::RpcError::is_retryable

pub(crate) mod failback;
pub(crate) mod failsafe;

use std::fmt;
use std::str::FromStr;

/// What happens when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FaultPolicy {
    /// `failfast`: one attempt; its error is the call's error.
    Failfast,
    /// `failover` (the default): retry a retryable failure on a *different* instance, up to
    /// `max_attempts` attempts in all, with exponential backoff and jitter, never past the
    /// call's deadline.
    #[default]
    Failover,
    /// `failsafe`: one attempt; on failure, log the error and return the caller's default
    /// ([`CallOptions::with_fallback`](crate::CallOptions::with_fallback)). Without a
    /// default, or one that does not convert to the return type, the error is returned.
    Failsafe,
    /// `failback`: one attempt; on a failure that is safe to retry, the caller gets the error
    /// *at once* and the call is queued and retried in the background until delivered or
    /// too old (the reply is discarded). For calls whose effect matters but whose answer
    /// does not, like notifications. A full queue drops the call with a warning.
    Failback,
}

impl FaultPolicy {
    /// Every policy, in documentation order.
    pub const ALL: [FaultPolicy; 4] = [
        FaultPolicy::Failfast,
        FaultPolicy::Failover,
        FaultPolicy::Failsafe,
        FaultPolicy::Failback,
    ];

    /// The configuration name, e.g. `failover`.
    pub fn name(self) -> &'static str {
        match self {
            FaultPolicy::Failfast => "failfast",
            FaultPolicy::Failover => "failover",
            FaultPolicy::Failsafe => "failsafe",
            FaultPolicy::Failback => "failback",
        }
    }
}

impl fmt::Display for FaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is not one of [`FaultPolicy::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault policy {value:?}; expected one of: {valid}", valid = policy_names())]
pub struct UnknownPolicy {
    /// The name given.
    pub value: String,
}

fn policy_names() -> String {
    FaultPolicy::ALL.map(FaultPolicy::name).join(", ")
}

impl FromStr for FaultPolicy {
    type Err = UnknownPolicy;

    /// Parses a name; case, `-` and `_` do not matter (`fail-over` works).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        FaultPolicy::ALL
            .into_iter()
            .find(|policy| policy.name() == normalized)
            .ok_or_else(|| UnknownPolicy {
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_names_list_the_valid_ones() {
        for policy in FaultPolicy::ALL {
            assert_eq!(policy.name().parse::<FaultPolicy>(), Ok(policy));
        }
        assert_eq!("Fail-Over".parse(), Ok(FaultPolicy::Failover));
        assert_eq!(FaultPolicy::default(), FaultPolicy::Failover);
        let message = "retry".parse::<FaultPolicy>().unwrap_err().to_string();
        assert_eq!(
            message,
            "unknown fault policy \"retry\"; expected one of: failfast, failover, failsafe, failback"
        );
    }
}
