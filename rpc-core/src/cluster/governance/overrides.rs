//! The overrides document: per-address `disabled` and `weight`, per-service call settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{check_version, GovernanceError, FORMAT_VERSION};
use crate::cluster::{BalancerKind, FaultPolicy};

/// The highest weight an override may set.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// `<root>/_governance/<service-key>/overrides`.
///
/// ```
/// use rpc_core::cluster::governance::Overrides;
///
/// let text = r#"{"version":1,"addresses":{"127.0.0.1:9101":{"disabled":true}}}"#;
/// let overrides = Overrides::parse(text).unwrap();
/// assert!(overrides.is_disabled("127.0.0.1:9101"));
/// assert_eq!(overrides.to_json(), text);
/// assert!(Overrides::parse(r#"{"version":1,"addresses":{"x":{"weight":0}}}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Overrides {
    /// The format version, [`FORMAT_VERSION`].
    pub version: u32,
    /// Settings for every call to the service.
    #[serde(default, skip_serializing_if = "ServiceOverrides::is_empty")]
    pub service: ServiceOverrides,
    /// Settings per provider address (`host:port`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, AddressOverride>,
}

/// Per-service call settings; each one set here wins over code, `rpc.toml` and `RPC_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceOverrides {
    /// The whole call's budget, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Attempts per call under fail-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// A balancer name, e.g. `least-loaded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancer: Option<String>,
    /// A fault policy name, e.g. `failover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// Settings for one provider address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AddressOverride {
    /// No consumer sends this provider calls; its own node stays registered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Replaces the weight the provider registered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides {
            version: FORMAT_VERSION,
            service: ServiceOverrides::default(),
            addresses: BTreeMap::new(),
        }
    }
}

impl Overrides {
    /// Parses and validates a document.
    pub fn parse(text: &str) -> Result<Overrides, GovernanceError> {
        let overrides: Overrides = super::routes::parse_json(text)?;
        overrides.validate()?;
        Ok(overrides)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), GovernanceError> {
        check_version(self.version)?;
        self.service.validate().map_err(|e| e.within("service"))?;
        for (address, entry) in &self.addresses {
            let field = format!("addresses.{address}");
            check_address(address).map_err(|problem| GovernanceError::invalid(&field, problem))?;
            if let Some(weight) = entry.weight {
                if !(1..=MAX_WEIGHT).contains(&weight) {
                    return Err(GovernanceError::invalid(
                        format!("{field}.weight"),
                        format!("{weight} is out of range 1..={MAX_WEIGHT}; use `disabled` to send no calls"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The document as compact JSON, fields in a fixed order.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether calls to `address` are turned off.
    pub fn is_disabled(&self, address: &str) -> bool {
        self.addresses.get(address).is_some_and(|a| a.disabled)
    }

    /// The weight `address` gets instead of its registered one, if any.
    pub fn weight(&self, address: &str) -> Option<u32> {
        self.addresses.get(address).and_then(|a| a.weight)
    }

    /// The entry for `address`, created empty if missing (for edits).
    pub fn address_mut(&mut self, address: &str) -> &mut AddressOverride {
        self.addresses.entry(address.to_string()).or_default()
    }

    /// Drops address entries that no longer set anything.
    pub fn prune(&mut self) {
        self.addresses
            .retain(|_, entry| entry.disabled || entry.weight.is_some());
    }
}

impl ServiceOverrides {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self == &ServiceOverrides::default()
    }

    /// The balancer to use, if one is set (validated, so it parses).
    pub fn balancer_kind(&self) -> Option<BalancerKind> {
        self.balancer.as_deref().and_then(|b| b.parse().ok())
    }

    /// The fault policy to use, if one is set (validated, so it parses).
    pub fn fault_policy(&self) -> Option<FaultPolicy> {
        self.policy.as_deref().and_then(|p| p.parse().ok())
    }

    fn validate(&self) -> Result<(), GovernanceError> {
        if self.deadline_ms == Some(0) {
            return Err(GovernanceError::invalid(
                "deadline_ms",
                "must be at least 1; leave it out for the client's own deadline",
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(GovernanceError::invalid(
                "max_attempts",
                "must be at least 1",
            ));
        }
        if let Some(balancer) = &self.balancer {
            balancer
                .parse::<BalancerKind>()
                .map_err(|e| GovernanceError::invalid("balancer", e.to_string()))?;
        }
        if let Some(policy) = &self.policy {
            policy
                .parse::<FaultPolicy>()
                .map_err(|e| GovernanceError::invalid("policy", e.to_string()))?;
        }
        Ok(())
    }
}

/// `host:port` with a non-empty host and a port number, as provider nodes are named.
fn check_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "{address:?} is not a provider address like 10.0.0.7:9101"
        )),
    }
}
