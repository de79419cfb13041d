//! `rpcctl call SERVICE METHOD ARGS`: one call through discovery with the JSON codec.
//!
//! Arguments travel as one tuple, which JSON writes as an array: `["bob"]` for one argument,
//! `[2,3]` for two. The empty tuple is JSON `null`, so `[]` is sent as `null`.

use std::time::Duration;

use bytes::Bytes;
use rpc_core::{CallOptions, ClientBuilder, Codec, ServiceKey};

use crate::commands::Target;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::spinner;

/// How the call is made.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The whole call's budget, discovery and retries included.
    pub deadline: Duration,
    /// Whether a timed-out attempt may be retried.
    pub idempotent: bool,
}

/// Calls `method` of `service` with `args` (a JSON array) and prints the JSON result;
/// `builder` carries the TLS and token settings.
pub async fn run(
    target: &Target,
    out: Output,
    key: &ServiceKey,
    method: &str,
    body: Bytes,
    settings: Settings,
    builder: ClientBuilder,
) -> CliResult {
    let client = builder
        .codec(Codec::Json)
        .deadline(Some(settings.deadline))
        .discover(target.registry.clone());
    let reply = spinner::waiting(
        format!("calling {key} {method}"),
        client.call_raw(
            key,
            method,
            Codec::Json,
            body,
            settings.idempotent,
            &CallOptions::new(),
        ),
    )
    .await?;
    match serde_json::from_slice::<serde_json::Value>(&reply) {
        Ok(value) => out.json_value(&value),
        Err(e) => Err(CliError::new(format!(
            "{key} {method} answered with a body that is not JSON ({e}): {}",
            String::from_utf8_lossy(&reply)
        ))),
    }
}

/// The request body for `args`: the array as given, compacted; `[]` becomes `null`. Anything
/// but a JSON array is an error that says what was expected.
pub fn encode_args(args: &str) -> CliResult<Bytes> {
    let expected = "expected a JSON array of the method's arguments, e.g. '[\"bob\"]' or '[2,3]', or '[]' for none";
    let value: serde_json::Value = serde_json::from_str(args).map_err(|e| {
        CliError::new(format!(
            "bad arguments {args:?}: not JSON ({e}); {expected}"
        ))
    })?;
    let serde_json::Value::Array(items) = &value else {
        return Err(CliError::new(format!(
            "bad arguments {args:?}: a JSON {} is not an array; {expected}",
            kind(&value)
        )));
    };
    let wire = if items.is_empty() {
        serde_json::Value::Null
    } else {
        value
    };
    Ok(Bytes::from(wire.to_string()))
}

/// The JSON type's name, for messages.
fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_a_json_array() {
        assert_eq!(&encode_args(r#"["bob"]"#).unwrap()[..], br#"["bob"]"#);
        assert_eq!(&encode_args("[2, 3]").unwrap()[..], b"[2,3]");
        assert_eq!(&encode_args("[]").unwrap()[..], b"null");
        let not_json = encode_args("[bob").unwrap_err().to_string();
        assert!(not_json.contains("not JSON"), "{not_json}");
        let not_array = encode_args(r#""bob""#).unwrap_err().to_string();
        assert!(not_array.contains("string is not an array"), "{not_array}");
    }

    #[test]
    fn the_wire_tuple_of_one_argument_is_a_one_element_array() {
        let tuple = ("bob".to_string(),);
        assert_eq!(serde_json::to_string(&tuple).unwrap(), r#"["bob"]"#);
        assert_eq!(serde_json::to_string(&()).unwrap(), "null");
    }
}
