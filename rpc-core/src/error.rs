//! The error a call returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{CodecError, MetadataError, Status};
use crate::registry::RegistryError;

/// Why a call failed. Every variant names what went wrong and where.
///
/// New variants may be added in minor releases; match with a wildcard arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server answered with a status other than ok.
    #[error("{service}.{method} on {addr}: {status}: {message}")]
    Status {
        /// The status the server sent.
        status: Status,
        /// The server's message (the response body).
        message: String,
        /// The service key called.
        service: String,
        /// The method called.
        method: String,
        /// The provider that answered.
        addr: SocketAddr,
    },
    /// No TCP connection could be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The provider's address.
        addr: SocketAddr,
        /// The I/O error (shared, so that the error stays cloneable).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The connection died while the call was in flight.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost {
        /// The provider's address.
        addr: SocketAddr,
        /// Why the connection ended.
        reason: String,
    },
    /// The connection had calls in flight but the provider answered nothing, not even a
    /// ping, for too long (a frozen process, a half-open connection). The connection is
    /// closed; whether the call ran is unknown, so it is retried only for idempotent methods.
    #[error("{addr} stopped answering: nothing heard for {silent_for:?} with calls in flight")]
    Unresponsive {
        /// The provider's address.
        addr: SocketAddr,
        /// How long the connection had been silent when it was given up.
        silent_for: Duration,
    },
    /// The request would be larger than the frame limit, so it was not sent. Nothing else
    /// is affected; retrying it cannot help.
    #[error("{service}.{method}: the request frame of {len} bytes is over the limit of {max} bytes; it was not sent")]
    RequestTooLarge {
        /// The service key called.
        service: String,
        /// The method called.
        method: String,
        /// The encoded frame's length.
        len: usize,
        /// The frame limit.
        max: usize,
    },
    /// The call's metadata (the call's own, the client's defaults, or what a client layer
    /// added) breaks the key or size rules, so the call was not sent.
    #[error("{service}.{method}: bad call metadata: {source}; the call was not sent")]
    BadMetadata {
        /// The service key called.
        service: String,
        /// The method called.
        method: String,
        /// What is wrong with the metadata.
        #[source]
        source: MetadataError,
    },
    /// The provider sent goaway before this call was written.
    #[error("{addr} is going away and takes no new calls")]
    GoAway {
        /// The provider's address.
        addr: SocketAddr,
    },
    /// The call's deadline passed before an answer came.
    #[error("deadline of {deadline:?} exceeded")]
    DeadlineExceeded {
        /// The deadline the call had.
        deadline: Duration,
    },
    /// The registry lists no usable provider for the service.
    #[error("no provider for {service}")]
    NoProvider {
        /// The service key.
        service: String,
    },
    /// Arguments did not encode, or the reply did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The registry failed and no cached list could stand in.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An address that cannot be used.
    #[error("bad address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS layer failed: the handshake (wrong CA, expired certificate, wrong name, a
    /// plaintext provider answering a TLS client, or the reverse), or a TLS setting of this
    /// client that cannot be used. Retrying the same address cannot help.
    #[error("TLS with {addr}: {reason}")]
    Tls {
        /// The provider's address.
        addr: SocketAddr,
        /// What went wrong, naming the likely cause.
        reason: String,
    },
    /// The peer broke the protocol.
    #[error("protocol error from {addr}: {message}")]
    Protocol {
        /// The peer's address.
        addr: SocketAddr,
        /// What it did wrong.
        message: String,
    },
}

impl RpcError {
    /// A connect failure to `addr`.
    pub fn connect(addr: SocketAddr, source: std::io::Error) -> RpcError {
        RpcError::Connect {
            addr,
            source: Arc::new(source),
        }
    }

    /// The wire status this error corresponds to, if the server sent one or a deadline passed.
    pub fn status(&self) -> Option<Status> {
        match self {
            RpcError::Status { status, .. } => Some(*status),
            RpcError::DeadlineExceeded { .. } => Some(Status::DeadlineExceeded),
            _ => None,
        }
    }

    /// Whether the call certainly did not run on the provider, or running it again is harmless.
    ///
    /// Connection failures, goaway, shutting down and overloaded are safe to retry, and so
    /// are unknown service and unknown method, which a provider answers without running
    /// anything (the address may serve something else). A timeout or a provider that went
    /// silent is retried only for idempotent methods; an application error, or a request too
    /// large to send, never is.
    pub fn is_retryable(&self, idempotent: bool) -> bool {
        match self {
            RpcError::Connect { .. }
            | RpcError::ConnectionLost { .. }
            | RpcError::GoAway { .. } => true,
            RpcError::Status { status, .. } => match status {
                Status::ShuttingDown
                | Status::Overloaded
                | Status::UnknownService
                | Status::UnknownMethod => true,
                Status::DeadlineExceeded => idempotent,
                _ => false,
            },
            RpcError::DeadlineExceeded { .. } | RpcError::Unresponsive { .. } => idempotent,
            _ => false,
        }
    }

    /// Whether this error says the provider itself is unreachable or dead (used for ejection).
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            RpcError::Connect { .. }
                | RpcError::ConnectionLost { .. }
                | RpcError::Unresponsive { .. }
        )
    }

    /// Whether the call failed on this side before reaching any provider, so that it says
    /// nothing about a provider's health.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            RpcError::RequestTooLarge { .. } | RpcError::BadMetadata { .. } | RpcError::Codec(_)
        )
    }
}
