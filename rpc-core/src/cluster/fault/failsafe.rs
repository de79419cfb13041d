//! Fail-safe: log the error and answer with the caller's default.

use serde::de::DeserializeOwned;

use crate::call::{Call, CallOptions};
use crate::RpcError;

/// The caller's fallback decoded as `R`, or the error if there is none or it does not fit.
pub(crate) fn fallback<R: DeserializeOwned>(
    call: &Call,
    error: RpcError,
    options: &CallOptions,
) -> Result<R, RpcError> {
    let Some(value) = &options.fallback else {
        tracing::warn!(service = &*call.service_key, method = &*call.method_name, %error, "call failed and has no fallback");
        return Err(error);
    };
    match serde_json::from_value::<R>(value.clone()) {
        Ok(default) => {
            tracing::warn!(service = &*call.service_key, method = &*call.method_name, %error, "call failed; returning the fallback (fail-safe)");
            Ok(default)
        }
        Err(decode) => {
            tracing::warn!(
                service = &*call.service_key,
                method = &*call.method_name,
                %error,
                fallback_error = %decode,
                "call failed and its fallback does not fit the return type"
            );
            Err(error)
        }
    }
}
