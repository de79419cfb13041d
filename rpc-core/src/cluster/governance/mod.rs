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
mod in_force;
mod matcher;
mod overrides;
pub mod router;
mod routes;
mod store;

pub use crate::documents::{DocumentKind, GOVERNANCE_DIR};
pub use error::GovernanceError;
pub use in_force::InForce;
pub(crate) use in_force::Routing;
pub use matcher::Matcher;
pub use overrides::{AddressOverride, Overrides, ServiceOverrides};
pub use router::{CallFacts, Decision, Routed};
pub use routes::{Condition, ConditionRule, Routes, TagRule};
pub use store::{GovernanceStore, StoreError};

/// The document format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata key in which a provider declares its routing tag.
pub const TAG_METADATA_KEY: &str = "rpc.tag";

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
