//! Per-call options.

use std::time::Duration;

use serde::Serialize;

use crate::protocol::Codec;

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
///     .with_fallback(&"nobody".to_string());
/// assert_eq!(options.deadline, Some(Duration::from_millis(200)));
/// assert!(options.hash_key.is_some());
/// // A stub takes them with `greeter.with_options(options)`.
/// ```
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
}
