//! The read side: the services list and one service's page, read through the same
//! functions as `rpcctl list`, `show`, `config get` and `route get`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::StreamExt;
use rpc_core::cluster::governance::{router, GovernanceStore, Overrides};
use rpc_core::registry::now_ms;
use rpc_core::{ServiceInstance, ServiceKey};
use rpc_registry::Scheme;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::State as Shared;
use crate::commands::etcd_lease::{self, Lease};
use crate::commands::{list, parse_key, show};

/// The metadata key a provider may publish its transport under; absent means the
/// framework's own framed TCP.
const TRANSPORT_METADATA_KEY: &str = "rpc.transport";
/// Overrides documents read at once for the services page.
const READS_AT_ONCE: usize = 16;

/// The service key in the path, or a 404 that says what a key looks like.
pub(crate) fn key_of(text: &str) -> Result<ServiceKey, ApiError> {
    parse_key(text).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
}

/// `GET /api/services`: every key with its provider count, how many are disabled, and a
/// health word: `up` (someone to call), `disabled` (all disabled) or `down` (none).
pub(crate) async fn services(State(console): State<Shared>) -> ApiResult {
    let listed = list::services(&console.registry).await?;
    let store = GovernanceStore::new(console.registry.clone());
    // A few reads at a time: a registry with many services is not asked all at once.
    let keys: Vec<ServiceKey> = listed.iter().map(|(key, _)| key.clone()).collect();
    let documents: Vec<_> = futures::stream::iter(keys)
        .map(|key| {
            let store = store.clone();
            async move { store.overrides(&key).await }
        })
        .buffered(READS_AT_ONCE)
        .collect()
        .await;
    let rows: Vec<Value> = listed
        .iter()
        .zip(documents)
        .map(|((key, instances), overrides)| {
            let disabled = match &overrides {
                Ok(o) => instances
                    .iter()
                    .filter(|i| o.is_disabled(&i.address()))
                    .count(),
                Err(_) => 0,
            };
            let health = match (instances.len(), instances.len() - disabled) {
                (0, _) => "down",
                (_, 0) => "disabled",
                _ => "up",
            };
            json!({
                "key": key.to_string(),
                "service": key.name(),
                "version": key.version(),
                "providers": instances.len(),
                "disabled": disabled,
                "health": health,
                "overrides_error": overrides.err().map(|e| e.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({ "services": rows })))
}

/// `GET /api/services/{key}`: the providers with their overrides, lease and traffic, and
/// the service's documents.
pub(crate) async fn service(State(console): State<Shared>, Path(key): Path<String>) -> ApiResult {
    let key = key_of(&key)?;
    let store = GovernanceStore::new(console.registry.clone());
    let instances = console.registry.discover(&key).await?;
    let (overrides, routes) = tokio::join!(store.overrides(&key), store.routes(&key));
    let leases = if console.url.scheme == Scheme::Etcd {
        Some(etcd_lease::leases(&console.url, &key).await)
    } else {
        None
    };
    let traffic = console.scraper.scrape(&key, &instances).await;
    let now = now_ms();
    let empty = Overrides::default();
    let in_force = overrides.as_ref().unwrap_or(&empty);
    let providers: Vec<Value> = instances
        .iter()
        .map(|instance| {
            let address = instance.address();
            let mut entry = show::instance_json(instance, now);
            entry["tag"] = json!(router::provider_tag(instance));
            entry["transport"] = json!(transport(instance));
            entry["disabled"] = json!(in_force.is_disabled(&address));
            entry["weight_override"] = json!(in_force.weight(&address));
            entry["admin"] = json!(instance.metadata.get(rpc_core::admin::METADATA_KEY));
            entry["lease"] = lease_json(leases.as_ref(), &address);
            entry["traffic"] = traffic.get(&address).cloned().unwrap_or(Value::Null);
            entry
        })
        .collect();
    Ok(Json(json!({
        "key": key.to_string(),
        "registry": console.registry.backend(),
        "providers": providers,
        "overrides": document(overrides.as_ref().map(Overrides::to_json)),
        "routes": document(routes.as_ref().map(|r| r.to_json())),
    })))
}

/// `GET /api/services/{key}/overrides`, as `rpcctl config get` reads it.
pub(crate) async fn overrides(State(console): State<Shared>, Path(key): Path<String>) -> ApiResult {
    let key = key_of(&key)?;
    let stored = GovernanceStore::new(console.registry.clone())
        .overrides(&key)
        .await?;
    Ok(Json(json!({ "overrides": parsed(&stored.to_json()) })))
}

/// `GET /api/services/{key}/routes`, as `rpcctl route get` reads it.
pub(crate) async fn routes(State(console): State<Shared>, Path(key): Path<String>) -> ApiResult {
    let key = key_of(&key)?;
    let stored = GovernanceStore::new(console.registry.clone())
        .routes(&key)
        .await?;
    Ok(Json(json!({ "routes": parsed(&stored.to_json()) })))
}

/// A stored document for the page: `{"document": ...}`, or `{"error": ...}` when what is
/// stored does not validate (written by hand), so the page can say so.
fn document<E: std::fmt::Display>(read: Result<String, &E>) -> Value {
    match read {
        Ok(text) => json!({ "document": parsed(&text) }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// A document's JSON text as a value.
pub(crate) fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn transport(instance: &ServiceInstance) -> &str {
    instance
        .metadata
        .get(TRANSPORT_METADATA_KEY)
        .map_or("tcp", String::as_str)
}

/// The lease column: its JSON, `null` for none, or `"unknown"` when etcd was not asked
/// (another backend) or did not answer.
fn lease_json(leases: Option<&Result<BTreeMap<String, Lease>, String>>, address: &str) -> Value {
    match leases {
        Some(Ok(map)) => map
            .get(address)
            .copied()
            .map_or(json!("unknown"), Lease::to_json),
        _ => json!("unknown"),
    }
}
