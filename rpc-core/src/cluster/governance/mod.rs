//! Governance: what operators change at run time without redeploying, kept in the registry as
//! persistent JSON documents beside the provider nodes (docs/governance.md, **contract**):
//!
//! - `<root>/_governance/<service-key>/overrides`: [`Overrides`] — per address `disabled` and
//!   `weight`; per service `deadline_ms`, `max_attempts`, `balancer`, `policy`;
//! - `<root>/_governance/<service-key>/routes`: [`Routes`] — tag routing and condition rules.
//!
//! Each document goes through parse (serde, unknown fields refused) → validate (every value
//! checked, regexes and CIDRs compiled) → the model the [`router`] applies. A document that
//! fails either step is refused with a [`GovernanceError`] naming the field, so rpcctl and the
//! console write nothing invalid and consumers keep the last good version.

mod error;
mod matcher;
mod overrides;
pub mod router;
mod routes;

pub use error::GovernanceError;
pub use matcher::Matcher;
pub use overrides::{AddressOverride, Overrides, ServiceOverrides};
pub use router::{CallFacts, Decision, Routed};
pub use routes::{Condition, ConditionRule, Routes, TagRule};

/// The folder under the registry root that holds governance documents. Listings of services
/// and watches of everything skip it.
pub const GOVERNANCE_DIR: &str = "_governance";

/// The document format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key in which a provider declares its routing tag.
pub const TAG_METADATA_KEY: &str = "rpc.tag";

/// The two documents a service can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// [`Overrides`].
    Overrides,
    /// [`Routes`].
    Routes,
}

impl DocumentKind {
    /// The last path segment, `overrides` or `routes`.
    pub fn name(self) -> &'static str {
        match self {
            DocumentKind::Overrides => "overrides",
            DocumentKind::Routes => "routes",
        }
    }

    /// The document's path for `service_key` under `root` (`/rpc` by default).
    ///
    /// ```
    /// use rpc_core::cluster::governance::DocumentKind;
    ///
    /// assert_eq!(
    ///     DocumentKind::Routes.path("/rpc", "example.Greeter:1.0.0"),
    ///     "/rpc/_governance/example.Greeter:1.0.0/routes"
    /// );
    /// ```
    pub fn path(self, root: &str, service_key: &str) -> String {
        format!(
            "{}/{GOVERNANCE_DIR}/{service_key}/{}",
            root.trim_end_matches('/'),
            self.name()
        )
    }
}

/// Checks a document's `version` field.
fn check_version(version: u32) -> Result<(), GovernanceError> {
    if version == FORMAT_VERSION {
        Ok(())
    } else {
        Err(GovernanceError::invalid(
            "version",
            format!("{version} is not a format this build reads; expected {FORMAT_VERSION}"),
        ))
    }
}
