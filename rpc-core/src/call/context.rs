//! The context of the call a handler is serving: who called, how long they still wait, what
//! metadata came with the call, and what metadata goes back. Handlers read it with
//! [`current`] without any change to the service trait's signatures.
//!
//! ```
//! #[rpc_core::service(name = "doc.Whoami", version = "1.0.0")]
//! pub trait Whoami {
//!     async fn who(&self) -> String;
//! }
//!
//! struct Server;
//!
//! impl Whoami for Server {
//!     async fn who(&self) -> String {
//!         let Some(call) = rpc_core::context::current() else {
//!             return "not in a call".into();
//!         };
//!         call.set_response_metadata("served-by", "doc").ok();
//!         let caller = call.metadata().get_str("rpc-caller").unwrap_or("anonymous");
//!         format!("{caller} from {}", call.peer())
//!     }
//! }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;

use super::Deadline;
use crate::protocol::{Metadata, MetadataError};

tokio::task_local! {
    static CURRENT: Arc<CallContext>;
}

/// One served call, as its handler sees it.
#[derive(Debug)]
pub struct CallContext {
    peer: SocketAddr,
    request_id: u64,
    service: ByteString,
    method: ByteString,
    deadline: Deadline,
    metadata: Metadata,
    response: Mutex<Metadata>,
}

impl CallContext {
    /// The context of a request from `peer`.
    pub fn new(
        peer: SocketAddr,
        request_id: u64,
        service: &str,
        method: &str,
        deadline: Deadline,
        metadata: Metadata,
    ) -> CallContext {
        CallContext::from_wire(
            peer,
            request_id,
            ByteString::from(service),
            ByteString::from(method),
            deadline,
            metadata,
        )
    }

    /// The context of a request as the server read it: the names share the frame's buffer.
    pub(crate) fn from_wire(
        peer: SocketAddr,
        request_id: u64,
        service: ByteString,
        method: ByteString,
        deadline: Deadline,
        metadata: Metadata,
    ) -> CallContext {
        CallContext {
            peer,
            request_id,
            service,
            method,
            deadline,
            metadata,
            response: Mutex::new(Metadata::new()),
        }
    }

    /// The caller's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The request id on the caller's connection.
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The service key called, `<name>:<version>`.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The method called.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// When the caller stops waiting.
    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    /// How long the caller still waits; `None` if it set no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.remaining()
    }

    /// The metadata the caller sent.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Adds an entry to the metadata sent back with the reply.
    pub fn set_response_metadata(
        &self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<(), MetadataError> {
        self.lock_response().insert(key, value)
    }

    /// The metadata the handler set for the reply (taken: a second call gets none).
    pub fn take_response_metadata(&self) -> Metadata {
        std::mem::take(&mut *self.lock_response())
    }

    fn lock_response(&self) -> std::sync::MutexGuard<'_, Metadata> {
        self.response.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The context of the call the current task is serving, if it is serving one.
pub fn current() -> Option<Arc<CallContext>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `work` with `context` as its [`current`] call.
pub async fn scope<F: std::future::Future>(context: Arc<CallContext>, work: F) -> F::Output {
    CURRENT.scope(context, work).await
}

/// Runs `work` (one synchronous poll of a handler, say) with `context` as its [`current`]
/// call.
pub(crate) fn sync_scope<R>(context: Arc<CallContext>, work: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(context, work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn current_is_set_only_inside_the_scope() {
        assert!(current().is_none());
        let mut metadata = Metadata::new();
        metadata.insert("rpc-caller", "tests").unwrap();
        let context = Arc::new(CallContext::new(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            7,
            "s:1",
            "m",
            Deadline::after(Some(Duration::from_secs(5))),
            metadata,
        ));
        let seen = scope(Arc::clone(&context), async {
            let call = current().expect("inside a call");
            call.set_response_metadata("answer", "42").unwrap();
            (
                call.request_id(),
                call.metadata().get_str("rpc-caller").map(str::to_string),
            )
        })
        .await;
        assert_eq!(seen, (7, Some("tests".to_string())));
        assert_eq!(
            context.take_response_metadata().get_str("answer"),
            Some("42")
        );
        assert!(current().is_none());
    }
}
