//! Per-call options.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::ResponseMetadata;
use crate::protocol::{Codec, Metadata, MetadataError};

/// Options for the calls made through one client stub. Build them with the `with_*` methods;
/// unset fields fall back to the [`Client`](crate::Client)'s defaults.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::{CallOptions, Codec};
///
/// let options = CallOptions::new()
///     .with_deadline(Duration::from_millis(200))
///     .with_codec(Codec::Json)
///     .with_hash_key("user-42")
///     .with_fallback(&"nobody".to_string())
///     .with_metadata("rpc-tag", "gray");
/// assert_eq!(options.deadline, Some(Duration::from_millis(200)));
/// assert!(options.hash_key.is_some());
/// assert_eq!(options.metadata.get_str("rpc-tag"), Some("gray"));
/// // One call: `greeter.call_with(&options).hello(..)` (borrows, clones nothing);
/// // every call of a stub: `greeter.with_options(options)`.
/// ```
///
/// A metadata entry that breaks the key rules (see [`Metadata`]) is kept as an error: the
/// call then fails with [`RpcError::BadMetadata`](crate::RpcError::BadMetadata) and nothing
/// is sent.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// The whole call's budget, retries included.
    pub deadline: Option<Duration>,
    /// The body codec for requests.
    pub codec: Option<Codec>,
    /// The key a consistent-hash balancer routes on.
    pub hash_key: Option<u64>,
    /// What a fail-safe policy returns when the call fails, as JSON.
    pub fallback: Option<serde_json::Value>,
    /// Metadata sent with the call; its entries win over the client's defaults.
    pub metadata: Metadata,
    /// Where the reply's metadata goes, if the caller wants it.
    pub response_metadata: Option<ResponseMetadata>,
    /// The first entry [`with_metadata`](Self::with_metadata) refused: the call fails with it.
    metadata_error: Option<MetadataError>,
}

impl CallOptions {
    /// Options with every field unset.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Sets the call's deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> CallOptions {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the body codec.
    pub fn with_codec(mut self, codec: Codec) -> CallOptions {
        self.codec = Some(codec);
        self
    }

    /// Sets the consistent-hash key; any hashable value works. It is hashed with a stable
    /// hash, so every consumer process routes the same key alike.
    pub fn with_hash_key(mut self, key: impl std::hash::Hash) -> CallOptions {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let stable = BuildHasherDefault::<super::StableHasher>::default();
        self.hash_key = Some(stable.hash_one(key));
        self
    }

    /// Sets the value a fail-safe policy returns instead of an error. It must have the
    /// method's return type; a value that does not convert is ignored and the error returned.
    pub fn with_fallback<T: Serialize>(mut self, value: &T) -> CallOptions {
        self.fallback = serde_json::to_value(value).ok();
        self
    }

    /// Adds a metadata entry sent with the call (replacing an earlier one of the same key).
    /// Keys are lowercase `a-z 0-9 - _ .`; values are text unless the key ends in `-bin`.
    /// A bad entry makes the call fail with
    /// [`RpcError::BadMetadata`](crate::RpcError::BadMetadata), unsent.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> CallOptions {
        if let Err(e) = self.metadata.insert(key, value) {
            self.metadata_error.get_or_insert(e);
        }
        self
    }

    /// Has the reply's metadata stored in `slot` (a clone shares it).
    pub fn with_response_metadata(mut self, slot: &ResponseMetadata) -> CallOptions {
        self.response_metadata = Some(slot.clone());
        self
    }

    /// The first metadata entry refused by [`with_metadata`](Self::with_metadata).
    pub fn metadata_error(&self) -> Option<&MetadataError> {
        self.metadata_error.as_ref()
    }
}
