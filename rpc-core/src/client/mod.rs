//! The calling side: [`Client`] turns a method call into a request on a multiplexed
//! connection, either to one fixed address or to providers found through a registry.

mod connection;
mod options;
mod pool;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use serde::{de::DeserializeOwned, Serialize};

pub use options::CallOptions;

use crate::cluster::{Cluster, ClusterConfig, Directory};
use crate::protocol::{Codec, DEFAULT_MAX_FRAME};
use crate::registry::{Registry, ServiceKey};
use crate::{MethodDescriptor, RpcError, ServiceDescriptor};
pub(crate) use connection::Connection;
use connection::RequestParts;
pub(crate) use pool::Pool;

/// A handle for calling services; cheap to clone, and clones share connections.
///
/// Generated stubs (`GreeterClient`) wrap one. Share a `Client` between stubs to share its
/// connections and registry watches.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Arc<Pool>,
    route: Route,
    codec: Codec,
    deadline: Option<Duration>,
}

enum Route {
    /// Every call goes to this address.
    Direct(SocketAddr),
    /// Providers come from a registry; balancing and fault tolerance pick among them.
    Cluster(Cluster),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner.route {
            Route::Direct(addr) => write!(f, "Client(direct {addr})"),
            Route::Cluster(cluster) => write!(f, "Client(registry {})", cluster.backend()),
        }
    }
}

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
    pub deadline: Option<Instant>,
    pub hash_key: Option<u64>,
}

impl Call {
    /// The service key as a value (for the directory, on a cold lookup).
    pub(crate) fn key(&self) -> ServiceKey {
        match self.service_key.rsplit_once(':') {
            Some((name, version)) => ServiceKey::new(name, version),
            None => ServiceKey::new(&*self.service_key, ""),
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
        let codec = options.codec.unwrap_or(self.inner.codec);
        let mut call = Call {
            service_key: ByteString::from_static(service.key),
            method_name: ByteString::from_static(method.name),
            idempotent: method.idempotent,
            codec,
            body: codec.encode(args)?,
            deadline: None,
            hash_key: options.hash_key,
        };
        match self.run(&mut call, options).await {
            Ok(body) => Ok(codec.decode(&body)?),
            Err(error) => self.on_error(&call, error, options),
        }
    }

    /// Calls a method named at run time with an already encoded argument tuple, and returns
    /// the encoded reply; both use `codec`. This is what tools such as `rpcctl call` use: with
    /// [`Codec::Json`] the arguments and the reply are plain JSON.
    ///
    /// `idempotent` says whether a timed-out attempt may be retried.
    pub async fn call_raw(
        &self,
        service: &ServiceKey,
        method: &str,
        codec: Codec,
        args: Bytes,
        idempotent: bool,
        options: &CallOptions,
    ) -> Result<Bytes, RpcError> {
        let mut call = Call {
            service_key: ByteString::from(service.to_string()),
            method_name: ByteString::from(method),
            idempotent,
            codec,
            body: args,
            deadline: None,
            hash_key: options.hash_key,
        };
        match self.run(&mut call, options).await {
            Ok(body) => Ok(body),
            Err(error) => {
                // Fail-back queues the call here; fail-safe hands back the fallback as JSON.
                let fallback: serde_json::Value = self.on_error(&call, error, options)?;
                match codec {
                    Codec::Json => Ok(Codec::Json.encode(&fallback)?),
                    Codec::Bincode => Err(RpcError::Codec(crate::protocol::CodecError {
                        codec: "bincode",
                        op: "encode",
                        message:
                            "a fail-safe fallback is returned by raw calls only with the JSON codec"
                                .into(),
                    })),
                }
            }
        }
    }

    /// Runs one call under its deadline, through the route.
    async fn run(&self, call: &mut Call, options: &CallOptions) -> Result<Bytes, RpcError> {
        let budget = options.deadline.or(self.inner.deadline);
        call.deadline = budget.map(|d| Instant::now() + d);
        let call = &*call;
        let reply = match budget {
            Some(budget) => tokio::time::timeout(budget, self.invoke(call))
                .await
                .unwrap_or(Err(RpcError::DeadlineExceeded { deadline: budget })),
            None => self.invoke(call).await,
        };
        reply
    }

    /// What a failed call returns: the error, or what the fault policy makes of it.
    fn on_error<R: DeserializeOwned>(
        &self,
        call: &Call,
        error: RpcError,
        options: &CallOptions,
    ) -> Result<R, RpcError> {
        match &self.inner.route {
            Route::Cluster(cluster) => cluster.on_final_error(call, error, options),
            Route::Direct(_) => Err(error),
        }
    }

    /// The directory of provider lists (with each endpoint's health), for registry clients;
    /// `None` for a direct client.
    pub fn directory(&self) -> Option<&Directory> {
        match &self.inner.route {
            Route::Cluster(cluster) => Some(cluster.directory()),
            Route::Direct(_) => None,
        }
    }

    /// Sends a protocol ping to `addr` and returns the round-trip time.
    pub async fn ping(&self, addr: SocketAddr) -> Result<Duration, RpcError> {
        self.inner.pool.get(addr).await?.ping().await
    }

    async fn invoke(&self, call: &Call) -> Result<Bytes, RpcError> {
        match &self.inner.route {
            Route::Direct(addr) => send(&self.inner.pool, *addr, call).await,
            Route::Cluster(cluster) => cluster.invoke(call).await,
        }
    }
}

/// One attempt of `call` on the provider at `addr`.
pub(crate) async fn send(pool: &Pool, addr: SocketAddr, call: &Call) -> Result<Bytes, RpcError> {
    let connection: Connection = pool.get(addr).await?;
    send_on(&connection, call).await
}

/// One attempt of `call` on an open connection.
pub(crate) async fn send_on(connection: &Connection, call: &Call) -> Result<Bytes, RpcError> {
    let reply = connection
        .call(RequestParts {
            service: &call.service_key,
            method: &call.method_name,
            codec: call.codec,
            body: &call.body,
            deadline: call.deadline,
        })
        .await?;
    if reply.status == crate::Status::Ok {
        Ok(reply.body)
    } else {
        Err(RpcError::Status {
            status: reply.status,
            message: String::from_utf8_lossy(&reply.body).into_owned(),
            service: call.service_key.to_string(),
            method: call.method_name.to_string(),
            addr: connection.addr(),
        })
    }
}

/// Settings for a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    codec: Codec,
    deadline: Option<Duration>,
    connect_timeout: Duration,
    connections_per_address: usize,
    max_frame: usize,
    cluster: ClusterConfig,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            codec: Codec::Bincode,
            deadline: Some(Duration::from_secs(10)),
            connect_timeout: Duration::from_secs(3),
            connections_per_address: 1,
            max_frame: DEFAULT_MAX_FRAME,
            cluster: ClusterConfig::default(),
        }
    }
}

impl ClientBuilder {
    /// The body codec of requests (default bincode).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The default deadline of a call, retries included (default 10 s); `None` waits forever.
    pub fn deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long opening a connection may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Multiplexed connections per provider address (default 1).
    pub fn connections_per_address(mut self, n: usize) -> Self {
        self.connections_per_address = n.max(1);
        self
    }

    /// The largest frame accepted from a provider (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Balancing, fault tolerance, ejection and directory settings for registry clients.
    pub fn cluster(mut self, config: ClusterConfig) -> Self {
        self.cluster = config;
        self
    }

    fn build(self, route: Route, pool: Arc<Pool>) -> Client {
        Client {
            inner: Arc::new(Inner {
                pool,
                route,
                codec: self.codec,
                deadline: self.deadline,
            }),
        }
    }

    fn pool(&self) -> Arc<Pool> {
        Arc::new(Pool::new(
            self.connections_per_address,
            self.connect_timeout,
            self.max_frame,
        ))
    }

    /// A client for one provider address; connects now, so a wrong address fails here.
    pub async fn connect(self, addr: &str) -> Result<Client, RpcError> {
        let resolved = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| RpcError::BadAddress {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| RpcError::BadAddress {
                addr: addr.to_string(),
                reason: "it resolves to no address".to_string(),
            })?;
        let pool = self.pool();
        pool.get(resolved).await?;
        Ok(self.build(Route::Direct(resolved), pool))
    }

    /// A client for one provider address that connects on first use.
    pub fn direct(self, addr: SocketAddr) -> Client {
        let pool = self.pool();
        self.build(Route::Direct(addr), pool)
    }

    /// A client that finds providers through `registry`.
    pub fn discover(self, registry: Arc<dyn Registry>) -> Client {
        let pool = self.pool();
        let cluster = Cluster::new(registry, self.cluster.clone(), Arc::clone(&pool));
        self.build(Route::Cluster(cluster), pool)
    }
}
