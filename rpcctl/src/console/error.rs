//! What the API answers when something is wrong: a status and `{"error", "field"}`, where
//! `field` is the document path of the bad value (`conditions[0].then.zone`) so the page
//! can put the message next to that field.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rpc_core::cluster::governance::{GovernanceError, StoreError};
use serde_json::json;

use crate::error::CliError;

/// An API error.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in `field`; nothing was written.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// A document that does not validate; nothing was written.
    pub(crate) fn invalid(error: &GovernanceError) -> ApiError {
        let field = match error {
            GovernanceError::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        };
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("{error}; nothing was written"),
            field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match &error {
            StoreError::Invalid { source, .. } => ApiError::invalid(source),
            _ => ApiError::new(StatusCode::BAD_GATEWAY, error.to_string()),
        }
    }
}

impl From<CliError> for ApiError {
    fn from(error: CliError) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, error.to_string())
    }
}

impl From<rpc_core::RegistryError> for ApiError {
    fn from(error: rpc_core::RegistryError) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "field": self.field });
        (self.status, Json(body)).into_response()
    }
}

/// What handlers return.
pub(crate) type ApiResult<T = Json<serde_json::Value>> = Result<T, ApiError>;
