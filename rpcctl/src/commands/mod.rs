//! The subcommands, one module each, and what they share: opening the registry a URL names
//! and parsing service keys.
//!
//! - [`list`]: services, versions and instance counts;
//! - [`show`]: the instances of one service key ([`etcd_lease`] adds lease TTLs on etcd);
//! - [`watch`]: a live stream of joins, leaves and updates;
//! - [`ping`]: protocol ping round trips to one provider;
//! - [`admin`]: offline, online and stats through a process's admin endpoint;
//! - [`register`]: the registrar, keeping a node for a process that cannot register itself;
//! - [`call`]: one call through discovery with the JSON codec;
//! - [`governance`] and [`route`]: the overrides and routes documents (disable, enable,
//!   weight, config, route get/set/delete/explain).

pub mod admin;
pub mod call;
pub mod etcd_lease;
pub mod governance;
pub mod list;
pub mod ping;
pub mod register;
pub mod route;
pub mod show;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Registry, RpcConfig, ServiceKey};
use rpc_registry::{RegistryUrl, Scheme};

use crate::error::{CliError, CliResult};
use crate::spinner;

/// How long closing the registry client may take at exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// An open registry client and the URL it came from.
pub struct Target {
    /// The parsed URL (endpoints, root, options).
    pub url: RegistryUrl,
    /// The client.
    pub registry: Arc<dyn Registry>,
}

impl Target {
    /// Opens the registry `url` names; `None` (no `--registry`, no `RPC_REGISTRY`) or
    /// `none` (the config's word for no registry) is an error that says how to give one.
    pub async fn open(url: Option<&str>) -> CliResult<Target> {
        let given = |u: &&str| !u.trim().is_empty() && u.trim() != "none";
        let url = url.filter(given).ok_or_else(|| {
            CliError::new(
                "no registry given: pass --registry URL or set RPC_REGISTRY \
                 (e.g. etcd://127.0.0.1:2379 or zookeeper://127.0.0.1:2181)",
            )
        })?;
        let parsed = with_registry_env(url)?;
        if parsed.scheme == Scheme::Memory {
            return Err(CliError::new(format!(
                "bad registry url {url:?}: a memory:// registry lives inside one process, so \
                 rpcctl cannot see it; use etcd://host:port or zookeeper://host:port"
            )));
        }
        let registry = spinner::waiting(
            // The parsed form: its password, if any, is `***`.
            format!("connecting to {}", parsed.original),
            rpc_registry::connect_with(parsed.clone()),
        )
        .await?;
        Ok(Target {
            url: parsed,
            registry,
        })
    }

    /// The URL as given, for messages.
    pub fn label(&self) -> &str {
        &self.url.original
    }

    /// Closes the client (a ZooKeeper session ends at once rather than timing out).
    pub async fn close(self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.registry.shutdown()).await;
    }
}

/// The URL with the `RPC_REGISTRY_*` variables applied, as a provider would read them:
/// `RPC_REGISTRY_USERNAME`, `RPC_REGISTRY_PASSWORD` or `RPC_REGISTRY_PASSWORD_FILE`,
/// `RPC_REGISTRY_TLS_*`, `RPC_REGISTRY_ACL`, `RPC_REGISTRY_TTL`/`_HEARTBEAT`.
fn with_registry_env(url: &str) -> CliResult<RegistryUrl> {
    let mut config = RpcConfig::default();
    config.registry = Some(url.into());
    let vars = std::env::vars().filter(|(name, _)| name.starts_with("RPC_REGISTRY_"));
    config
        .merge_env(vars)
        .map_err(|e| CliError::new(e.to_string()))?;
    RegistryUrl::from_config(&config)?.ok_or_else(|| CliError::new("no registry given"))
}

/// Parses `<service-name>:<version>`, with an error that shows the expected form.
pub fn parse_key(text: &str) -> CliResult<ServiceKey> {
    Ok(text.parse::<ServiceKey>()?)
}
