//! The calling side, as users see it: [`Client`] turns a method call into a `Call` and hands
//! it to its route, either one fixed address (through the transport) or the providers a
//! registry lists (through the cluster's invoker).
//!
//! This is the top of the consumer path: it imports the cluster, the transport and the call,
//! and none of them imports it.

mod auth_token;
mod builder;
mod layer;
mod outgoing;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use serde::{de::DeserializeOwned, Serialize};
use tower::ServiceExt;
use tracing::Instrument;

pub use crate::call::{CallOptions, ResponseMetadata};
pub use crate::transport::{ClientTls, TlsConfigError};
pub use auth_token::AuthToken;
pub use builder::ClientBuilder;
pub use layer::{ClientRequest, ClientResponse, ClientStack};

use crate::call::{Call, Deadline};
use crate::cluster::{Directory, Invoker};
use crate::protocol::{Codec, CodecError, Codecs, Metadata, MetadataError};
use crate::registry::{Registry, ServiceKey};
use crate::transport::{check_request, Pool};
use crate::{MethodDescriptor, RpcError, ServiceDescriptor};

/// A handle for calling services; cheap to clone, and clones share connections.
///
/// Generated stubs (`GreeterClient`) wrap one. Share a `Client` between stubs to share its
/// connections and registry watches. Dropping the last handle (stubs included) closes its
/// connections at once and ends their tasks.
///
/// Every connection with calls in flight is pinged; one that stays silent past the ping
/// timeout fails its calls with [`RpcError::Unresponsive`] (see
/// [`ClientBuilder::ping_timeout`]). A request larger than the frame limit fails alone with
/// [`RpcError::RequestTooLarge`] before anything is sent.
///
/// Every call runs in a debug-level `rpc.client` span (service, method, attempt, peer,
/// status, latency, trace id). It sends the W3C `traceparent` of its trace: continued from the
/// served call it is made in, or a new trace when this client's spans are recorded.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    core: Arc<Core>,
    codec: Codec,
    codecs: Codecs,
    deadline: Option<Duration>,
    /// Sent with every call unless the call sets the same key.
    metadata: Metadata,
    /// A default entry the builder refused: every call fails with it.
    metadata_error: Option<MetadataError>,
    /// `client.tag`: the `rpc-tag` of calls that neither set one nor inherit one.
    tag: Option<String>,
    /// The builder's layers over [`Core`], if any were added.
    stack: Option<ClientStack>,
}

/// What sends a call once its metadata is final: the route and the connections.
pub(crate) struct Core {
    pool: Arc<Pool>,
    route: Route,
    max_frame: usize,
}

impl Drop for Core {
    /// The last handle is gone: close every connection now rather than when the provider's
    /// idle timeout fires, and let the connections' tasks end.
    fn drop(&mut self) {
        self.pool.close();
    }
}

enum Route {
    /// Every call goes to this address.
    Direct(SocketAddr),
    /// Providers come from a registry; balancing and fault tolerance pick among them.
    Cluster(Invoker),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.core.route {
            Route::Direct(addr) => write!(f, "Client(direct {addr})"),
            Route::Cluster(cluster) => write!(f, "Client(registry {})", cluster.backend()),
        }
    }
}

impl Client {
    /// A builder with every default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to one provider address (`host:port`) and sends every call there.
    pub async fn connect(addr: &str) -> Result<Client, RpcError> {
        Client::builder().connect(addr).await
    }

    /// A client that finds providers through `registry`, with default balancing and faults.
    pub fn discover(registry: Arc<dyn Registry>) -> Client {
        Client::builder().discover(registry)
    }

    /// Calls `method` of `service` with `args` (the argument tuple) and decodes the reply.
    ///
    /// The deadline bounds the whole call, retries included.
    pub async fn call<A, R>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        args: &A,
        options: &CallOptions,
    ) -> Result<R, RpcError>
    where
        A: Serialize + Sync + ?Sized,
        R: DeserializeOwned,
    {
        let codec = self.registered(options.codec.unwrap_or(self.inner.codec))?;
        let mut call = Call {
            service_key: ByteString::from_static(service.key),
            method_name: ByteString::from_static(method.name),
            idempotent: method.idempotent,
            codec,
            body: codec.encode(args)?,
            deadline: Deadline::NONE,
            budget: Duration::MAX,
            hash_key: options.hash_key,
            metadata: Bytes::new(),
            reply_metadata: None,
        };
        match self.send(&mut call, options).await {
            Ok(body) => Ok(codec.decode(&body)?),
            Err(error) => self.on_error(&call, error, options),
        }
    }

    /// Calls a method named at run time with an already encoded argument tuple, and returns
    /// the encoded reply; both use `codec`. This is what tools such as `rpcctl call` use: with
    /// [`Codec::Json`] the arguments and the reply are plain JSON.
    ///
    /// `idempotent` says whether a timed-out attempt may be retried. Metadata goes with
    /// [`CallOptions::with_metadata`], and the reply's comes back through
    /// [`CallOptions::with_response_metadata`], as for typed calls.
    pub async fn call_raw(
        &self,
        service: &ServiceKey,
        method: &str,
        codec: Codec,
        args: Bytes,
        idempotent: bool,
        options: &CallOptions,
    ) -> Result<Bytes, RpcError> {
        let codec = self.registered(codec)?;
        let mut call = Call {
            service_key: ByteString::from(service.to_string()),
            method_name: ByteString::from(method),
            idempotent,
            codec,
            body: args,
            deadline: Deadline::NONE,
            budget: Duration::MAX,
            hash_key: options.hash_key,
            metadata: Bytes::new(),
            reply_metadata: None,
        };
        match self.send(&mut call, options).await {
            Ok(body) => Ok(body),
            Err(error) => {
                // Fail-back queues the call here; fail-safe hands back the fallback as JSON.
                let fallback: serde_json::Value = self.on_error(&call, error, options)?;
                match codec {
                    Codec::Json => Ok(Codec::Json.encode(&fallback)?),
                    other => Err(RpcError::Codec(CodecError {
                        codec: other.name(),
                        op: "encode",
                        message:
                            "a fail-safe fallback is returned by raw calls only with the JSON codec"
                                .into(),
                    })),
                }
            }
        }
    }

    /// `codec`, if this client may call with it; a codec not registered fails the call here.
    #[inline]
    fn registered(&self, codec: Codec) -> Result<Codec, RpcError> {
        if self.inner.codecs.contains(codec) {
            return Ok(codec);
        }
        Err(RpcError::Codec(CodecError {
            codec: codec.name(),
            op: "encode",
            message: format!(
                "codec id {} is not registered on this client (it has {})",
                codec.id(),
                self.inner.codecs
            ),
        }))
    }

    /// Runs one call in its span: adds its metadata, then sends it through the layers, if
    /// any, or straight through the route.
    async fn send(&self, call: &mut Call, options: &CallOptions) -> Result<Bytes, RpcError> {
        let span = trace::call_span(&call.service_key, &call.method_name);
        if span.is_disabled() {
            // Nobody records it: no clock read, no span entered at every poll.
            return self.send_in_span(call, options, &span).await;
        }
        let started = Instant::now();
        let result = self
            .send_in_span(call, options, &span)
            .instrument(span.clone())
            .await;
        trace::finish(&span, started, &result);
        result
    }

    async fn send_in_span(
        &self,
        call: &mut Call,
        options: &CallOptions,
        span: &tracing::Span,
    ) -> Result<Bytes, RpcError> {
        let bad_metadata = |call: &Call, source| RpcError::BadMetadata {
            service: call.service_key.to_string(),
            method: call.method_name.to_string(),
            source,
        };
        if let Some(error) = &self.inner.metadata_error {
            return Err(bad_metadata(call, error.clone()));
        }
        let metadata = outgoing::metadata(
            options,
            &self.inner.metadata,
            self.inner.tag.as_deref(),
            span,
        )
        .map_err(|e| bad_metadata(call, e))?;
        let budget = options.deadline.or(self.inner.deadline);
        let Some(stack) = &self.inner.stack else {
            call.metadata = metadata.encode();
            call.reply_metadata = options.response_metadata.clone();
            return self.inner.core.run(call, budget).await;
        };
        let request = ClientRequest {
            call: call.clone(),
            metadata,
            budget,
        };
        let response = stack.clone().oneshot(request).await?;
        if let Some(slot) = &options.response_metadata {
            slot.set(response.metadata);
        }
        Ok(response.body)
    }

    /// What a failed call returns: the error, or what the fault policy makes of it.
    fn on_error<R: DeserializeOwned>(
        &self,
        call: &Call,
        error: RpcError,
        options: &CallOptions,
    ) -> Result<R, RpcError> {
        match &self.inner.core.route {
            Route::Cluster(cluster) => cluster.on_final_error(call, error, options),
            Route::Direct(_) => Err(error),
        }
    }

    /// The directory of provider lists (with each endpoint's health), for registry clients;
    /// `None` for a direct client.
    pub fn directory(&self) -> Option<&Directory> {
        match &self.inner.core.route {
            Route::Cluster(cluster) => Some(cluster.directory()),
            Route::Direct(_) => None,
        }
    }

    /// Sends a protocol ping to `addr` and returns the round-trip time.
    pub async fn ping(&self, addr: SocketAddr) -> Result<Duration, RpcError> {
        self.inner.core.pool.get(addr).await?.ping().await
    }
}

impl Core {
    /// Runs one call under its deadline, through the route. A request too large to send
    /// fails here, before any provider is chosen or charged for it.
    async fn run(&self, call: &mut Call, budget: Option<Duration>) -> Result<Bytes, RpcError> {
        let budget = match &self.route {
            Route::Cluster(cluster) => cluster.deadline_override(&call.service_key).or(budget),
            Route::Direct(_) => budget,
        };
        let now = Instant::now();
        call.deadline = Deadline::after_since(budget, now);
        call.budget = budget.unwrap_or(Duration::MAX);
        check_request(call, self.max_frame)?;
        let call = &*call;
        match &self.route {
            // The connection keeps the deadline of the wait for the reply, and opening a
            // connection is bounded below: no timer per call.
            Route::Direct(_) => self.invoke(call, now).await,
            // Routing may wait on the registry, backoff and several attempts.
            Route::Cluster(_) => call.within_deadline(self.invoke(call, now)).await,
        }
    }

    /// Sends `call` through the route; `started` is when the call began.
    async fn invoke(&self, call: &Call, started: Instant) -> Result<Bytes, RpcError> {
        match &self.route {
            Route::Direct(addr) => {
                crate::call::record_attempt(1, *addr);
                let result = async {
                    let connection = match self.pool.get_ready(*addr) {
                        Some(connection) => connection,
                        None => call.within_deadline(self.pool.get(*addr)).await?,
                    };
                    connection.send(call).await
                }
                .await;
                crate::cluster::metrics::attempt_finished(call, *addr, &result, started.elapsed());
                result
            }
            // Boxed: the cluster's future (selection, fail-over, fail-back) is several
            // kilobytes, and every layer above moves this one by value; a direct call
            // would pay for copying it on every call.
            Route::Cluster(cluster) => Box::pin(cluster.invoke(call)).await,
        }
    }
}
