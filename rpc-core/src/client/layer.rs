//! Client middleware: [`ClientBuilder::layer`](super::ClientBuilder::layer) wraps every call
//! of a client in `tower` layers. A layer sees a [`ClientRequest`] (names, metadata it may
//! change, the deadline) and the [`ClientResponse`] (the encoded reply and its metadata);
//! it wraps the whole call, retries and fail-over included.
//!
//! ```
//! use rpc_core::client::{ClientRequest, ClientStack};
//! use rpc_core::tower::util::MapRequestLayer;
//!
//! // Adds a credential to every call.
//! let builder = rpc_core::Client::builder().layer(MapRequestLayer::new(
//!     |mut request: ClientRequest| {
//!         request.metadata_mut().insert("authorization", "Bearer t0ken").ok();
//!         request
//!     },
//! ));
//! # let _ = builder;
//! ```

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tower::util::BoxCloneSyncService;

use super::{outgoing, Core};
use crate::call::{Call, ResponseMetadata};
use crate::protocol::Metadata;
use crate::RpcError;

/// What client layers wrap: the rest of the stack down to the network, boxed.
pub type ClientStack = BoxCloneSyncService<ClientRequest, ClientResponse, RpcError>;

/// One call on its way out, as a client layer sees it.
pub struct ClientRequest {
    pub(super) call: Call,
    pub(super) metadata: Metadata,
    pub(super) budget: Option<Duration>,
}

impl std::fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRequest")
            .field("service", &self.service())
            .field("method", &self.method())
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl ClientRequest {
    /// The service key called, `<name>:<version>`.
    pub fn service(&self) -> &str {
        &self.call.service_key
    }

    /// The method called.
    pub fn method(&self) -> &str {
        &self.call.method_name
    }

    /// The metadata to be sent (the call's, the client's defaults, the trace context).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The metadata to be sent, to add or change entries. The block limits are checked after
    /// the last layer: a call over them fails with [`RpcError::BadMetadata`], unsent.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The call's whole budget, retries included (`None`: no deadline).
    pub fn deadline(&self) -> Option<Duration> {
        self.budget
    }

    /// The encoded argument tuple.
    pub fn body(&self) -> &Bytes {
        &self.call.body
    }
}

/// The answer to a call, as a client layer sees it.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// The encoded return value.
    pub body: Bytes,
    /// The metadata the handler set on its reply.
    pub metadata: Metadata,
}

/// The innermost service: sends the call through the client's route.
#[derive(Clone)]
pub(super) struct SendCall {
    pub(super) core: Arc<Core>,
}

impl tower::Service<ClientRequest> for SendCall {
    type Response = ClientResponse;
    type Error = RpcError;
    type Future = BoxFuture<'static, Result<ClientResponse, RpcError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RpcError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ClientRequest) -> Self::Future {
        let core = Arc::clone(&self.core);
        Box::pin(async move {
            let ClientRequest {
                mut call,
                metadata,
                budget,
            } = request;
            outgoing::check_limits(&metadata).map_err(|source| RpcError::BadMetadata {
                service: call.service_key.to_string(),
                method: call.method_name.to_string(),
                source,
            })?;
            call.metadata = metadata.encode();
            let reply = ResponseMetadata::new();
            call.reply_metadata = Some(reply.clone());
            let body = core.run(&mut call, budget).await?;
            Ok(ClientResponse {
                body,
                metadata: reply.take(),
            })
        })
    }
}

/// How a builder turns the innermost service into the stack its layers make.
#[derive(Clone)]
pub(super) struct Layers(Arc<dyn Fn(ClientStack) -> ClientStack + Send + Sync>);

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Layers(..)")
    }
}

impl Layers {
    /// `layer` around whatever `inner` builds (or around the innermost service).
    pub(super) fn wrap<L>(inner: Option<Layers>, layer: L) -> Layers
    where
        L: tower::Layer<ClientStack> + Send + Sync + 'static,
        L::Service: tower::Service<ClientRequest, Response = ClientResponse, Error = RpcError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ClientRequest>>::Future: Send + 'static,
    {
        Layers(Arc::new(move |innermost| {
            let below = match &inner {
                Some(inner) => (inner.0)(innermost),
                None => innermost,
            };
            BoxCloneSyncService::new(layer.layer(below))
        }))
    }

    /// The stack over `core`.
    pub(super) fn build(&self, core: Arc<Core>) -> ClientStack {
        (self.0)(BoxCloneSyncService::new(SendCall { core }))
    }
}
