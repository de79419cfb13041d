//! Server middleware: [`ServerBuilder::layer`](super::ServerBuilder::layer) wraps the
//! dispatch of every call in `tower` layers. A layer sees a [`ServerRequest`] (the call's
//! [`CallContext`]: peer, names, deadline, metadata; and its encoded arguments) and answers
//! with the encoded reply, or refuses the call with a [`Rejection`] naming its status.
//!
//! The whole stack runs inside the call's context and deadline, under the panic guard. Errors
//! of `tower`'s own layers become statuses too: `load_shed`'s overload is status 6, anything
//! else status 8 (internal error).
//!
//! ```
//! use std::task::{Context, Poll};
//! use rpc_core::server::{Rejection, ServerRequest};
//! use rpc_core::tower::{Layer, Service};
//! use rpc_core::Status;
//!
//! /// Refuses calls without an `authorization` entry with status 9.
//! #[derive(Clone)]
//! struct RequireAuth<S>(S);
//!
//! impl<S> Service<ServerRequest> for RequireAuth<S>
//! where
//!     S: Service<ServerRequest, Error = Rejection>,
//!     S::Future: Send + 'static,
//! {
//!     type Response = S::Response;
//!     type Error = Rejection;
//!     type Future = futures::future::Either<
//!         S::Future,
//!         std::future::Ready<Result<S::Response, Rejection>>,
//!     >;
//!
//!     fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
//!         self.0.poll_ready(cx)
//!     }
//!
//!     fn call(&mut self, request: ServerRequest) -> Self::Future {
//!         if request.metadata().get("authorization").is_none() {
//!             let no = Rejection::new(Status::Unauthenticated, "no authorization");
//!             return futures::future::Either::Right(std::future::ready(Err(no)));
//!         }
//!         futures::future::Either::Left(self.0.call(request))
//!     }
//! }
//!
//! let builder = rpc_core::Server::builder()
//!     .layer(rpc_core::tower::layer::layer_fn(RequireAuth));
//! # let _ = builder;
//! ```

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use super::context::ServiceMap;
use super::wire_text::WireText;
use crate::call::context::CallContext;
use crate::protocol::{Codec, Metadata, Status};
use crate::DispatchError;

/// What server layers wrap: the rest of the dispatch down to the handler, boxed.
pub type ServerStack = BoxCloneSyncService<ServerRequest, Bytes, Rejection>;

/// One call on its way to its handler, as a server layer sees it.
#[derive(Debug)]
pub struct ServerRequest {
    pub(super) context: Arc<CallContext>,
    pub(super) codec: Codec,
    pub(super) body: Bytes,
    pub(super) peer_name: Option<Arc<str>>,
}

impl ServerRequest {
    /// The call's context: peer, request id, names, deadline, metadata, reply metadata.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// The metadata the caller sent.
    pub fn metadata(&self) -> &Metadata {
        self.context.metadata()
    }

    /// The caller's address.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.context.peer()
    }

    /// The service key called, `<name>:<version>`.
    pub fn service(&self) -> &str {
        self.context.service()
    }

    /// The subject common name of the caller's client certificate, when the connection is
    /// mutual TLS (`server.tls.client_ca`) and the certificate has one: verified by the TLS
    /// handshake against the client CA.
    pub fn peer_name(&self) -> Option<&str> {
        self.peer_name.as_deref()
    }

    /// The method called.
    pub fn method(&self) -> &str {
        self.context.method()
    }

    /// The codec of the arguments (and of the reply).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The encoded argument tuple.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A call refused before (or instead of) its handler: the status and message its caller
/// gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Rejection {
    /// The reply's status; never [`Status::Ok`] on the wire (it is sent as status 8).
    pub status: Status,
    /// The reply's message.
    pub message: String,
}

impl Rejection {
    /// A refusal with `status` and `message`.
    pub fn new(status: Status, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            message: message.into(),
        }
    }
}

impl From<tower::BoxError> for Rejection {
    /// A layer's error: a [`Rejection`] stays itself; `tower`'s overload (`load_shed`) is
    /// status 6; anything else is status 8 with its message.
    fn from(error: tower::BoxError) -> Rejection {
        let error = match error.downcast::<Rejection>() {
            Ok(rejection) => return *rejection,
            Err(error) => error,
        };
        let message = WireText(&error.to_string()).to_string();
        // `tower::load_shed::error::Overloaded` prints this; its type needs a tower feature.
        if message == "service overloaded" {
            return Rejection::new(Status::Overloaded, message);
        }
        Rejection::new(Status::Internal, message)
    }
}

/// The innermost service: finds the service and runs the handler.
#[derive(Clone)]
pub(super) struct Handlers {
    pub(super) services: Arc<ServiceMap>,
}

impl tower::Service<ServerRequest> for Handlers {
    type Response = Bytes;
    type Error = Rejection;
    type Future = BoxFuture<'static, Result<Bytes, Rejection>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ServerRequest) -> Self::Future {
        let service = WireText(request.service());
        let Some(handler) = self.services.get(request.service()) else {
            let message = format!("unknown service {service:?}");
            return Box::pin(async move { Err(Rejection::new(Status::UnknownService, message)) });
        };
        let method = request.method();
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler.call(method, request.codec, request.body.clone())
        }));
        let rejection = match started {
            Ok(Ok(work)) => {
                return work
                    .map(|reply| reply.map_err(|e| Rejection::new(Status::Internal, e.to_string())))
                    .boxed()
            }
            Ok(Err(DispatchError::UnknownMethod { .. })) => Rejection::new(
                Status::UnknownMethod,
                format!("unknown method {:?} of {service}", WireText(method)),
            ),
            Ok(Err(e)) => Rejection::new(Status::BadRequest, WireText(&e.to_string()).to_string()),
            Err(_) => Rejection::new(
                Status::BadRequest,
                format!(
                    "arguments of {service}.{} do not decode: the decoder panicked",
                    WireText(method)
                ),
            ),
        };
        Box::pin(async move { Err(rejection) })
    }
}

/// How a builder turns the innermost service into the stack its layers make.
#[derive(Clone)]
pub(super) struct Layers(Arc<dyn Fn(ServerStack) -> ServerStack + Send + Sync>);

impl Layers {
    /// `layer` around whatever `inner` builds (or around the innermost service).
    pub(super) fn wrap<L>(inner: Option<Layers>, layer: L) -> Layers
    where
        L: tower::Layer<ServerStack> + Send + Sync + 'static,
        L::Service: tower::Service<ServerRequest, Response = Bytes> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<Rejection>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
    {
        Layers(Arc::new(move |innermost| {
            let below = match &inner {
                Some(inner) => (inner.0)(innermost),
                None => innermost,
            };
            BoxCloneSyncService::new(layer.layer(below).map_err(Into::into))
        }))
    }

    /// The stack over the served services.
    pub(super) fn build(&self, services: Arc<ServiceMap>) -> ServerStack {
        (self.0)(BoxCloneSyncService::new(Handlers { services }))
    }
}
