//! `rpcctl disable|enable|weight|config`: the overrides document of a service
//! (docs/governance.md). Every write is validated first and the stored document is read
//! back and printed, so what is shown is what consumers apply.

use std::sync::Arc;

use clap::Subcommand;
use rpc_core::cluster::governance::{GovernanceError, GovernanceStore, Overrides, StoreError};
use rpc_core::{Registry, ServiceKey};
use serde_json::json;

use crate::commands::Target;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// `rpcctl config get|set`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the service's overrides document.
    Get {
        /// The service key, NAME:VERSION.
        service: String,
    },
    /// Set per-service call settings: deadline_ms, max_attempts, balancer, policy
    /// (`key=` clears one).
    Set {
        /// The service key, NAME:VERSION.
        service: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
}

/// One overrides edit, checked before the registry is opened.
#[derive(Debug)]
pub enum Edit {
    /// Turn calls to an address off (`true`) or on again.
    Disabled(String, bool),
    /// Replace an address's weight.
    Weight(String, u32),
    /// Per-service settings, `(key, value)`; an empty value clears.
    Service(Vec<(String, String)>),
    /// The whole document, replaced (the console's raw JSON editor).
    Document(Box<Overrides>),
}

impl Edit {
    /// Parses `config set` pairs, refusing unknown keys before anything is read or written.
    pub fn settings(pairs: &[String]) -> CliResult<Edit> {
        let mut parsed = Vec::new();
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| CliError::new(format!("{pair:?} is not KEY=VALUE")))?;
            if !matches!(key, "deadline_ms" | "max_attempts" | "balancer" | "policy") {
                return Err(CliError::new(format!(
                    "unknown setting {key:?}; expected deadline_ms, max_attempts, balancer or policy"
                )));
            }
            parsed.push((key.to_string(), value.to_string()));
        }
        Ok(Edit::Service(parsed))
    }

    fn apply(self, overrides: &mut Overrides) -> Result<(), GovernanceError> {
        match self {
            Edit::Disabled(address, disabled) => {
                overrides.address_mut(&address).disabled = disabled
            }
            Edit::Weight(address, weight) => overrides.address_mut(&address).weight = Some(weight),
            Edit::Document(document) => *overrides = *document,
            Edit::Service(pairs) => {
                let service = &mut overrides.service;
                for (key, value) in pairs {
                    let text = (!value.is_empty()).then(|| value.clone());
                    match key.as_str() {
                        "deadline_ms" => service.deadline_ms = number("deadline_ms", &value)?,
                        "max_attempts" => service.max_attempts = number("max_attempts", &value)?,
                        "balancer" => service.balancer = text,
                        _ => service.policy = text,
                    }
                }
            }
        }
        Ok(())
    }
}

/// A number setting; an empty value clears it.
fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<Option<T>, GovernanceError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| GovernanceError::invalid_value(format!("service.{field}"), value))
}

/// Applies `edit` to the overrides of `key` and prints the stored document.
pub async fn edit(target: &Target, out: Output, key: &ServiceKey, edit: Edit) -> CliResult {
    let stored = write(&target.registry, key, edit)
        .await
        .map_err(store_error)?;
    print_overrides(out, key, &stored)
}

/// Applies `edit` to the overrides of `key`, validated before anything is written; the
/// document as read back. `rpcctl disable|enable|weight|config set` and the console's
/// buttons both write through here.
pub async fn write(
    registry: &Arc<dyn Registry>,
    key: &ServiceKey,
    edit: Edit,
) -> Result<Overrides, StoreError> {
    GovernanceStore::new(registry.clone())
        .edit_overrides(key, |overrides| edit.apply(overrides))
        .await
}

/// Prints the overrides of `key`.
pub async fn get(target: &Target, out: Output, key: &ServiceKey) -> CliResult {
    let store = GovernanceStore::new(target.registry.clone());
    let overrides = store.overrides(key).await.map_err(store_error)?;
    print_overrides(out, key, &overrides)
}

fn print_overrides(out: Output, key: &ServiceKey, overrides: &Overrides) -> CliResult {
    let document: serde_json::Value =
        serde_json::from_str(&overrides.to_json()).unwrap_or(serde_json::Value::Null);
    if out.is_json() {
        return out.json_line(&json!({ "service": key.to_string(), "overrides": document }));
    }
    out.line(&format!("overrides of {key}:"))?;
    out.json_value(&document)
}

/// A store error as the user should read it.
pub fn store_error(error: StoreError) -> CliError {
    match error {
        StoreError::Invalid { .. } => CliError::new(format!("{error}; nothing was written")),
        other => CliError::new(other.to_string()),
    }
}
