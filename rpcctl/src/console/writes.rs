//! The write side and route explain. Every write goes through the function the matching
//! rpcctl command calls ([`governance::write`], [`route::store`]), which validates before
//! writing; the answer is the document read back from the registry, and a document that
//! does not read back as sent is reported rather than shown as saved.

use axum::extract::{Path, Query, State};
use axum::Json;
use rpc_core::cluster::governance::{Overrides, Routes};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{key_of, parsed};
use super::error::{ApiError, ApiResult};
use super::State as Shared;
use crate::commands::governance::{self, Edit};
use crate::commands::route::{self, Explanation, Question};

/// The body of disable and enable.
#[derive(Debug, Deserialize)]
pub(crate) struct Address {
    address: String,
}

/// The body of weight: the weight as typed, checked here so a bad one is named.
#[derive(Debug, Deserialize)]
pub(crate) struct Weight {
    address: String,
    weight: Value,
}

/// `POST /api/services/{key}/disable` `{"address": …}`, as `rpcctl disable`.
pub(crate) async fn disable(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Json(body): Json<Address>,
) -> ApiResult {
    edit(&console, &key, Edit::Disabled(address(body.address)?, true)).await
}

/// `POST /api/services/{key}/enable` `{"address": …}`, as `rpcctl enable`.
pub(crate) async fn enable(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Json(body): Json<Address>,
) -> ApiResult {
    edit(
        &console,
        &key,
        Edit::Disabled(address(body.address)?, false),
    )
    .await
}

/// `POST /api/services/{key}/weight` `{"address": …, "weight": N}`, as `rpcctl weight`.
pub(crate) async fn weight(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Json(body): Json<Weight>,
) -> ApiResult {
    let weight = match &body.weight {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|w| u32::try_from(w).ok())
    .ok_or_else(|| {
        ApiError::field(
            "weight",
            format!("{} is not a whole number from 1 to 1000000", body.weight),
        )
    })?;
    edit(&console, &key, Edit::Weight(address(body.address)?, weight)).await
}

/// `PUT /api/services/{key}/overrides` with the whole document, as the raw JSON editor
/// sends it.
pub(crate) async fn put_overrides(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Json(document): Json<Value>,
) -> ApiResult {
    let overrides = Overrides::parse(&document.to_string()).map_err(|e| ApiError::invalid(&e))?;
    let expected = overrides.clone();
    let key_text = key;
    let Json(answer) = edit(&console, &key_text, Edit::Document(Box::new(overrides))).await?;
    let mut wanted = expected;
    wanted.prune();
    check_read_back(&answer["overrides"], &wanted.to_json())?;
    Ok(Json(answer))
}

/// `PUT /api/services/{key}/routes` with the whole document, as `rpcctl route set`.
pub(crate) async fn put_routes(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Json(document): Json<Value>,
) -> ApiResult {
    let key = key_of(&key)?;
    // The parse `rpcctl route set` does on its file.
    let routes = Routes::parse(&document.to_string()).map_err(|e| ApiError::invalid(&e))?;
    let stored = route::store(&console.registry, &key, &routes).await?;
    check_read_back(&parsed(&stored.to_json()), &routes.to_json())?;
    Ok(Json(json!({ "routes": parsed(&stored.to_json()) })))
}

/// The "which providers would this call reach" box's question.
#[derive(Debug, Deserialize)]
pub(crate) struct Ask {
    #[serde(default)]
    method: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    caller: String,
}

/// `GET /api/services/{key}/explain?method=&tag=&caller=`, as `rpcctl route explain`.
pub(crate) async fn explain(
    State(console): State<Shared>,
    Path(key): Path<String>,
    Query(ask): Query<Ask>,
) -> ApiResult {
    let key = key_of(&key)?;
    let given = |text: String| Some(text.trim().to_string()).filter(|t| !t.is_empty());
    let question = Question {
        method: ask.method.trim().to_string(),
        tag: given(ask.tag),
        caller: given(ask.caller),
    };
    let explanation = Explanation::ask(&console.registry, &key, &question).await?;
    Ok(Json(explanation.to_json(&key)))
}

/// Applies one overrides edit as rpcctl does; the document read back.
async fn edit(console: &Shared, key: &str, edit: Edit) -> ApiResult {
    let key = key_of(key)?;
    let stored = governance::write(&console.registry, &key, edit).await?;
    Ok(Json(json!({ "overrides": parsed(&stored.to_json()) })))
}

/// A non-empty address, trimmed.
fn address(text: String) -> Result<String, ApiError> {
    let address = text.trim().to_string();
    if address.is_empty() {
        return Err(ApiError::field("address", "give the provider's HOST:PORT"));
    }
    Ok(address)
}

/// Fails unless what the registry holds now is what was sent.
fn check_read_back(stored: &Value, sent: &str) -> Result<(), ApiError> {
    if stored != &parsed(sent) {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!("the registry holds {stored} after the save, not what was sent: {sent}"),
        ));
    }
    Ok(())
}
