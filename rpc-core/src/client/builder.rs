//! [`ClientBuilder`]: a client's settings, finished by choosing its route.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::auth_token::AuthToken;
use super::layer::Layers;
use super::{Client, Core, Inner, Route};
use super::{ClientRequest, ClientResponse, ClientStack};
use crate::cluster::{ClusterConfig, Invoker};
use crate::defaults;
use crate::protocol::{keys, Codec, Codecs, Metadata, MetadataError, DEFAULT_MAX_FRAME};
use crate::registry::Registry;
use crate::transport::{ClientTls, Pool, Settings};
use crate::RpcError;

/// Settings for a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    codec: Codec,
    codecs: Codecs,
    deadline: Option<Duration>,
    connect_timeout: Duration,
    connections_per_address: usize,
    max_frame: usize,
    ping_interval: Duration,
    ping_timeout: Duration,
    cluster: ClusterConfig,
    metadata: Metadata,
    metadata_error: Option<MetadataError>,
    layers: Option<Layers>,
    tls: ClientTls,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            codec: defaults::CODEC,
            codecs: Codecs::new(),
            deadline: defaults::DEADLINE,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            connections_per_address: defaults::CONNECTIONS_PER_ADDRESS,
            max_frame: DEFAULT_MAX_FRAME,
            ping_interval: defaults::PING_INTERVAL,
            ping_timeout: defaults::PING_TIMEOUT,
            cluster: ClusterConfig::default(),
            metadata: Metadata::new(),
            metadata_error: None,
            layers: None,
            tls: ClientTls::default(),
        }
    }
}

impl ClientBuilder {
    /// The body codec of requests (default bincode). A [`Codec::Custom`] must be in
    /// [`codecs`](ClientBuilder::codecs) too.
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The codecs calls may use (default: the built-ins, bincode, JSON and postcard). A call
    /// in a codec not among them fails with [`RpcError::Codec`], unsent.
    pub fn codecs(mut self, codecs: Codecs) -> Self {
        self.codecs = codecs;
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

    /// The largest frame either way (default 16 MiB): a reply over it closes the connection,
    /// and a request over it fails alone with [`RpcError::RequestTooLarge`], unsent.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// How often a connection with calls in flight is pinged (default 500 ms); zero turns
    /// connection health checks off.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// How long a connection with calls in flight may stay silent, answering neither calls
    /// nor pings, before it is declared dead (default 1.5 s). Its calls then fail with
    /// [`RpcError::Unresponsive`] (retried elsewhere for idempotent methods) and the address
    /// counts as unreachable.
    pub fn ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Balancing, fault tolerance, ejection and directory settings for registry clients.
    pub fn cluster(mut self, config: ClusterConfig) -> Self {
        self.cluster = config;
        self
    }

    /// A metadata entry sent with every call (`rpc-tag`, say); a call's own entry of the
    /// same key wins. A bad key or value makes every call fail with
    /// [`RpcError::BadMetadata`], unsent.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        if let Err(e) = self.metadata.insert(key, value) {
            self.metadata_error.get_or_insert(e);
        }
        self
    }

    /// The calling application's name, sent as `rpc-caller` with every call
    /// (`client.caller`, `RPC_CALLER`).
    pub fn caller(self, name: impl Into<String>) -> Self {
        self.metadata(keys::CALLER, name.into())
    }

    /// TLS settings (`client.tls.*`): trust roots, an optional client certificate, the name
    /// to verify. Providers whose registry node says `"transport": "tls"` are dialled with
    /// TLS; with trust roots set, direct addresses are too.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// Adds a PEM file of CA certificates that providers' certificates are checked against
    /// (`client.tls.ca`, `RPC_TLS_CA`).
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca.push(path.into());
        self
    }

    /// This client's certificate chain and key (PEM files), for providers that require
    /// client certificates (`client.tls.cert` / `client.tls.key`).
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls.cert = Some(cert.into());
        self.tls.key = Some(key.into());
        self
    }

    /// The name providers' certificates must carry instead of the dialled address
    /// (`client.tls.server_name`, `RPC_TLS_SERVER_NAME`).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self
    }

    /// Also trusts the platform's CA certificates (`client.tls.platform_roots`,
    /// `RPC_TLS_PLATFORM_ROOTS`): the operating system's store, or `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR`.
    pub fn tls_platform_roots(mut self, trust: bool) -> Self {
        self.tls.platform_roots = trust;
        self
    }

    /// Sends `authorization: Bearer <token>` with every call (`client.auth.token`,
    /// `RPC_AUTH_TOKEN`); a call's own `authorization` entry wins. An empty token sends
    /// nothing.
    pub fn auth_token(self, token: AuthToken) -> Self {
        if token.is_empty() {
            return self;
        }
        self.metadata(keys::AUTHORIZATION, token.bearer())
    }

    /// Wraps every call of the client in a `tower` layer: it sees each
    /// [`ClientRequest`] (and may change its metadata) before the call is sent, retries and
    /// fail-over included, and its [`ClientResponse`]. Each `layer` wraps the ones added
    /// before it. A client with no layer sends calls with no extra boxing.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ClientStack> + Send + Sync + 'static,
        L::Service: tower::Service<ClientRequest, Response = ClientResponse, Error = RpcError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ClientRequest>>::Future: Send + 'static,
    {
        self.layers = Some(Layers::wrap(self.layers.take(), layer));
        self
    }

    fn build(self, route: Route, pool: Arc<Pool>) -> Client {
        let core = Arc::new(Core {
            pool,
            route,
            max_frame: self.max_frame,
        });
        Client {
            inner: Arc::new(Inner {
                stack: self.layers.map(|layers| layers.build(Arc::clone(&core))),
                core,
                codec: self.codec,
                codecs: self.codecs,
                deadline: self.deadline,
                metadata: self.metadata,
                metadata_error: self.metadata_error,
                tag: self.cluster.tag.clone(),
            }),
        }
    }

    fn pool(&self) -> Arc<Pool> {
        Arc::new(Pool::new(
            self.connections_per_address,
            Settings {
                connect_timeout: self.connect_timeout,
                max_frame: self.max_frame,
                ping_interval: self.ping_interval,
                ping_timeout: self.ping_timeout,
                reconnect_backoff: defaults::RECONNECT_BACKOFF,
            },
            &self.tls,
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
        let invoker = Invoker::new(registry, self.cluster.clone(), Arc::clone(&pool));
        self.build(Route::Cluster(invoker), pool)
    }
}
