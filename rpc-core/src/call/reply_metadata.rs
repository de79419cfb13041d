//! [`ResponseMetadata`]: where a caller receives the metadata a handler set on its reply.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::protocol::Metadata;

/// A slot that receives the metadata of a call's reply. Clones share the slot: keep one,
/// hand a clone to [`CallOptions::with_response_metadata`](super::CallOptions::with_response_metadata),
/// and read it after the call.
///
/// ```
/// use rpc_core::call::ResponseMetadata;
/// use rpc_core::CallOptions;
///
/// let reply = ResponseMetadata::new();
/// let options = CallOptions::new().with_response_metadata(&reply);
/// // ... greeter.call_with(&options).hello("bob".into()).await?;
/// assert!(reply.get().is_empty()); // nothing came back yet
/// # let _ = options;
/// ```
#[derive(Clone, Default)]
pub struct ResponseMetadata {
    slot: Arc<Mutex<Metadata>>,
}

impl std::fmt::Debug for ResponseMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ResponseMetadata")
            .field(&*self.lock())
            .finish()
    }
}

impl ResponseMetadata {
    /// An empty slot.
    pub fn new() -> ResponseMetadata {
        ResponseMetadata::default()
    }

    /// A copy of the metadata of the last reply received through this slot.
    pub fn get(&self) -> Metadata {
        self.lock().clone()
    }

    /// The metadata of the last reply, leaving the slot empty.
    pub fn take(&self) -> Metadata {
        std::mem::take(&mut *self.lock())
    }

    /// Stores a reply's metadata (replacing what an earlier reply left).
    pub(crate) fn set(&self, metadata: Metadata) {
        *self.lock() = metadata;
    }

    fn lock(&self) -> MutexGuard<'_, Metadata> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}
