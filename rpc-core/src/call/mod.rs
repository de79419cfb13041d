//! One call as every layer below the user's stub sees it: what to send (`Call`), the
//! caller's per-call settings ([`CallOptions`]), its time budget ([`Deadline`]) and the stable
//! hash that routes a key ([`StableHasher`]), and on the serving side the [`context`] of the
//! call a handler runs in, with the [`TraceParent`] that links calls into one trace.
//!
//! This layer sits under the transport, the cluster and the client; it imports none of them.

pub mod context;
mod deadline;
mod hash;
mod options;
#[cfg(feature = "opentelemetry")]
pub(crate) mod otel;
mod reply_metadata;
mod trace;

use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

pub use deadline::Deadline;
pub(crate) use hash::mix64;
pub use hash::StableHasher;
pub use options::CallOptions;
pub use reply_metadata::ResponseMetadata;
pub(crate) use trace::record_attempt;
pub use trace::TraceParent;

use crate::protocol::Codec;
use crate::registry::ServiceKey;

/// One encoded call, as the routing and retry layers see it. Clones share the body.
#[derive(Clone)]
pub(crate) struct Call {
    /// `<name>:<version>`; always parses as a [`ServiceKey`] (checked when the call is made).
    pub service_key: ByteString,
    pub method_name: ByteString,
    /// The method is marked `#[idempotent]`: a timed-out attempt may be retried.
    pub idempotent: bool,
    pub codec: Codec,
    pub body: Bytes,
    pub deadline: Deadline,
    /// The budget `deadline` was set from, which the error names when it passes
    /// (`Duration::MAX` for none).
    pub budget: Duration,
    pub hash_key: Option<u64>,
    /// The encoded metadata block, empty for none (the frame's flag bit stays clear).
    pub metadata: Bytes,
    /// Where the reply's metadata goes; `None` when nobody reads it.
    pub reply_metadata: Option<ResponseMetadata>,
}

impl Call {
    /// The service key as a value (for the directory, on a cold lookup).
    pub(crate) fn key(&self) -> ServiceKey {
        match self.service_key.rsplit_once(':') {
            Some((name, version)) => ServiceKey::new(name, version),
            None => ServiceKey::new(&*self.service_key, ""),
        }
    }

    /// Runs `work` until this call's deadline; once it passes, the error names the budget.
    pub(crate) async fn within_deadline<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, crate::RpcError>>,
    ) -> Result<T, crate::RpcError> {
        match self.deadline.run(work).await {
            Some(result) => result,
            None => Err(crate::RpcError::DeadlineExceeded {
                deadline: self.budget,
            }),
        }
    }
}
