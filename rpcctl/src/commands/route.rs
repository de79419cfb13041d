//! `rpcctl route get|set|delete|explain`: the routes document of a service
//! (docs/governance.md). `explain` runs the consumer's own router over the providers
//! registered now, so it prints the set a call would reach and the rule that decided it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use rpc_core::cluster::governance::router::Routed;
use rpc_core::cluster::governance::{router, CallFacts, GovernanceStore, Routes, StoreError};
use rpc_core::documents::DocumentKind;
use rpc_core::{Registry, ServiceInstance, ServiceKey};
use serde_json::json;

use crate::commands::governance::store_error;
use crate::commands::Target;
use crate::error::{CliError, CliResult};
use crate::output::{Output, Table};

/// `rpcctl route ...`.
#[derive(Subcommand, Debug)]
pub enum RouteCommand {
    /// Print the service's routes document.
    Get {
        /// The service key, NAME:VERSION.
        service: String,
    },
    /// Validate and store a routes document, from --file or standard input.
    Set {
        /// The service key, NAME:VERSION.
        service: String,
        /// The JSON document; standard input when left out.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Delete the service's routes document.
    Delete {
        /// The service key, NAME:VERSION.
        service: String,
    },
    /// Print which providers a call would reach, and which rule decided it.
    Explain {
        /// The service key, NAME:VERSION.
        service: String,
        /// The method called.
        #[arg(long, default_value = "")]
        method: String,
        /// The call's routing tag.
        #[arg(long)]
        tag: Option<String>,
        /// The caller's name (rpc-caller).
        #[arg(long)]
        caller: Option<String>,
    },
}

/// Reads the document `route set` stores: the file, or standard input. It is parsed and
/// validated here, before the registry is opened.
pub fn read_document(file: Option<&PathBuf>) -> CliResult<Routes> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?,
        None => std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?,
    };
    Routes::parse(&text).map_err(|e| CliError::new(format!("{e}; nothing was written")))
}

/// Prints the routes of `key`.
pub async fn get(target: &Target, out: Output, key: &ServiceKey) -> CliResult {
    let routes = GovernanceStore::new(target.registry.clone())
        .routes(key)
        .await
        .map_err(store_error)?;
    print_routes(out, key, &routes)
}

/// Stores `routes` for `key` and prints what is stored.
pub async fn set(target: &Target, out: Output, key: &ServiceKey, routes: &Routes) -> CliResult {
    let stored = store(&target.registry, key, routes)
        .await
        .map_err(store_error)?;
    print_routes(out, key, &stored)
}

/// Validates and stores `routes` for `key`; the document as read back. `rpcctl route set`
/// and the console's routes form both write through here.
pub async fn store(
    registry: &Arc<dyn Registry>,
    key: &ServiceKey,
    routes: &Routes,
) -> Result<Routes, StoreError> {
    let store = GovernanceStore::new(registry.clone());
    store.put_routes(key, routes).await?;
    store.routes(key).await
}

/// Deletes the routes of `key`.
pub async fn delete(target: &Target, out: Output, key: &ServiceKey) -> CliResult {
    GovernanceStore::new(target.registry.clone())
        .delete(key, DocumentKind::Routes)
        .await
        .map_err(store_error)?;
    if out.is_json() {
        return out.json_line(&json!({ "service": key.to_string(), "routes": null }));
    }
    out.line(&format!("deleted the routes of {key}"))
}

fn print_routes(out: Output, key: &ServiceKey, routes: &Routes) -> CliResult {
    let document: serde_json::Value =
        serde_json::from_str(&routes.to_json()).unwrap_or(serde_json::Value::Null);
    if out.is_json() {
        return out.json_line(&json!({ "service": key.to_string(), "routes": document }));
    }
    out.line(&format!("routes of {key}:"))?;
    out.json_value(&document)
}

/// What `route explain` is asked about.
#[derive(Debug)]
pub struct Question {
    /// The method.
    pub method: String,
    /// The routing tag.
    pub tag: Option<String>,
    /// The caller's name.
    pub caller: Option<String>,
}

/// One imagined call routed over the providers registered now.
pub struct Explanation {
    /// The providers registered now.
    pub providers: Vec<ServiceInstance>,
    /// Which of them the call reaches, and why.
    pub routed: Routed,
}

impl Explanation {
    /// Runs the consumer's router over the providers of `key` with its stored documents.
    /// `rpcctl route explain` and the console's "which providers would this call reach" box
    /// both ask here.
    pub async fn ask(
        registry: &Arc<dyn Registry>,
        key: &ServiceKey,
        question: &Question,
    ) -> CliResult<Explanation> {
        let store = GovernanceStore::new(registry.clone());
        let providers = registry.discover(key).await?;
        let overrides = store.overrides(key).await.map_err(store_error)?;
        let routes = store.routes(key).await.map_err(store_error)?;
        let listed: Vec<&ServiceInstance> = providers.iter().collect();
        let call = CallFacts {
            method: &question.method,
            tag: question.tag.as_deref(),
            caller: question.caller.as_deref(),
            metadata: None,
        };
        let routed = router::route(Some(&overrides), Some(&routes), &listed, &call);
        Ok(Explanation { providers, routed })
    }

    /// The addresses the call reaches.
    pub fn reached(&self) -> Vec<String> {
        self.routed
            .selected
            .iter()
            .map(|&i| self.providers[i].address())
            .collect()
    }

    /// The `--json` form.
    pub fn to_json(&self, key: &ServiceKey) -> serde_json::Value {
        let decision = &self.routed.decision;
        json!({
            "service": key.to_string(),
            "reached": self.reached(),
            "registered": self.providers.iter().map(|p| p.address()).collect::<Vec<_>>(),
            "disabled": decision.disabled,
            "condition": decision.condition.as_ref().map(|(name, outcome)| json!({"rule": name, "outcome": format!("{outcome:?}")})),
            "tag": {"tag": decision.tag.0, "outcome": format!("{:?}", decision.tag.1)},
            "decision": decision.to_string(),
        })
    }
}

/// Routes one imagined call over the providers registered now.
pub async fn explain(
    target: &Target,
    out: Output,
    key: &ServiceKey,
    question: &Question,
) -> CliResult {
    let explanation = Explanation::ask(&target.registry, key, question).await?;
    if out.is_json() {
        return out.json_line(&explanation.to_json(key));
    }
    let routed = &explanation.routed;
    let mut table = Table::new(&["PROVIDER", "TAG", "REACHED"]);
    for (i, provider) in explanation.providers.iter().enumerate() {
        table.row(vec![
            provider.address(),
            router::provider_tag(provider).unwrap_or("-").to_string(),
            if routed.selected.contains(&i) {
                "yes"
            } else {
                "no"
            }
            .to_string(),
        ]);
    }
    out.line(&table.render())?;
    out.line(&routed.decision.to_string())
}
