//! Server settings and start-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::{Admission, Full};
use super::advertise::{published, Advertise};
use super::auth::{AuthLayer, ServerAuth};
use super::connection::serve_connection;
use super::context::{ConnectionContext, ServiceMap};
use super::layer::{Layers, Rejection, ServerRequest, ServerStack};
use super::registration::Registration;
use super::stats::StatsSource;
use super::tls::{handshake, ServerTls};
use super::warn_limit::WarnLimit;
use super::{ServerControl, ServerError, ServerHandle};
use crate::defaults;
use crate::protocol::DEFAULT_MAX_FRAME;
use crate::protocol::{Codecs, MetadataLimits};
use crate::registry::Registry;
use crate::Service;

/// Settings for a server. Every setting has a default; only the services are required.
///
/// ```no_run
/// # async fn run(greeter: impl rpc_core::Service) -> Result<(), rpc_core::server::ServerError> {
/// let server = rpc_core::Server::builder()
///     .bind("127.0.0.1:0")
///     .serve(greeter)
///     .start()
///     .await?;
/// println!("listening on {}", server.local_addr());
/// server.run_until_signal().await
/// # }
/// ```
pub struct ServerBuilder {
    bind: String,
    max_frame: usize,
    max_connections: usize,
    max_in_flight: usize,
    max_connections_per_address: Option<usize>,
    max_unsent_bytes: usize,
    max_partial_frame_bytes: usize,
    frame_timeout: Duration,
    idle_timeout: Option<Duration>,
    drain_grace: Duration,
    propagation_grace: Duration,
    services: Vec<Arc<dyn Service>>,
    registry: Option<Arc<dyn Registry>>,
    advertise: Option<String>,
    weight: u32,
    metadata: BTreeMap<String, String>,
    metadata_limits: MetadataLimits,
    codecs: Codecs,
    layers: Option<Layers>,
    tls: Option<ServerTls>,
    auth: Option<ServerAuth>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            bind: defaults::LISTEN.to_string(),
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: defaults::MAX_CONNECTIONS,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS,
            max_unsent_bytes: defaults::MAX_UNSENT_BYTES,
            max_partial_frame_bytes: defaults::MAX_PARTIAL_FRAME_BYTES,
            frame_timeout: defaults::FRAME_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            drain_grace: defaults::DRAIN_GRACE,
            propagation_grace: defaults::PROPAGATION_GRACE,
            services: Vec::new(),
            registry: None,
            advertise: None,
            weight: crate::registry::DEFAULT_WEIGHT,
            metadata: BTreeMap::new(),
            metadata_limits: MetadataLimits::default(),
            codecs: Codecs::new(),
            layers: None,
            tls: None,
            auth: None,
        }
    }
}

impl ServerBuilder {
    /// The listen address (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Adds a service; any number share the port.
    pub fn serve(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Adds an already shared service.
    pub fn serve_arc(mut self, service: Arc<dyn Service>) -> Self {
        self.services.push(service);
        self
    }

    /// The largest frame accepted (default 16 MiB).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Connections served at once (default 10,000). At the limit, the connection idle longest
    /// (no call in flight) is closed to admit a newcomer; with none idle, the newcomer is
    /// refused.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections served at once from one IP address (default `None`: only
    /// [`max_connections`](Self::max_connections)). At the cap, that address's connection
    /// idle longest is closed to admit its newcomer.
    pub fn max_connections_per_address(mut self, n: Option<usize>) -> Self {
        self.max_connections_per_address = n;
        self
    }

    /// Reply bytes a connection may have queued and unsent before it stops reading requests
    /// until its peer catches up (default 4 MiB), answers of handlers that finish at once
    /// included.
    pub fn max_unsent_bytes(mut self, bytes: usize) -> Self {
        self.max_unsent_bytes = bytes;
        self
    }

    /// Bytes of partially received frames the server buffers over all connections (default
    /// 256 MiB; at least `max_frame` + 4). Frames up to 16 KiB are not counted. A connection
    /// whose next frame does not fit waits, unread, until it does.
    pub fn max_partial_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_partial_frame_bytes = bytes;
        self
    }

    /// How long a frame may take to arrive once it has started, and how long a peer may leave
    /// its replies unread while the connection waits for it, before the connection is closed
    /// (default 30 s).
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.frame_timeout = timeout;
        self
    }

    /// Calls in flight per connection (default 10,000); more are answered "overloaded".
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Closes a connection that sends nothing and has no call in flight for this long
    /// (default 5 minutes; `None` keeps idle connections forever).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long shutdown waits for in-flight calls before aborting them (default 10 s).
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = grace;
        self
    }

    /// How long shutdown waits after deregistering, so watchers stop sending calls before
    /// the server stops taking them (default 1 s).
    pub fn propagation_grace(mut self, grace: Duration) -> Self {
        self.propagation_grace = grace;
        self
    }

    /// Publishes every served service in `registry` once the listener is ready.
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The address published in the registry for consumers to dial, `HOST[:PORT]`
    /// (`server.advertise`): the port defaults to the bound one. Default: the bound IP, or,
    /// when bound to all interfaces, this host's primary non-loopback address (logged).
    /// A bad value fails [`start`](Self::start).
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = Some(address.into());
        self
    }

    /// Publishes `host` with the bound port; the same as [`advertise`](Self::advertise)
    /// with no port.
    pub fn advertise_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        self.advertise = Some(if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        });
        self
    }

    /// The weight published with each instance (default 100).
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// How large a call's metadata block may be (default 64 entries, 16 KiB). A call over
    /// a limit gets status 4; the connection goes on.
    pub fn metadata_limits(mut self, limits: MetadataLimits) -> Self {
        self.metadata_limits = limits;
        self
    }

    /// The codecs requests may use (default: the built-ins, bincode, JSON and postcard).
    /// A request in another codec gets status 4; the connection goes on.
    pub fn codecs(mut self, codecs: Codecs) -> Self {
        self.codecs = codecs;
        self
    }

    /// Wraps the dispatch of every call in a `tower` layer (auth checks, rate or
    /// concurrency limits, logging): it sees each [`ServerRequest`] before its handler and
    /// may refuse it with a [`Rejection`] (its status goes to the caller). Each `layer` wraps
    /// the ones added before it. A server with no layer dispatches with no extra boxing.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ServerStack> + Send + Sync + 'static,
        L::Service: tower::Service<ServerRequest, Response = Bytes> + Clone + Send + Sync + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<Rejection>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
    {
        self.layers = Some(Layers::wrap(self.layers.take(), layer));
        self
    }

    /// Serves TLS only (`server.tls.*`), and publishes `"transport": "tls"` in each registry
    /// node so consumers dial it with TLS. Unreadable files fail [`start`](Self::start).
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates callers by bearer token (`server.auth.*`): a missing or unknown token
    /// gets status 9, a caller not on the service's allow-list status 10. Runs before every
    /// other layer; pings are not calls and stay unauthenticated.
    pub fn auth(mut self, auth: ServerAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// A metadata label published with each instance.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Binds, starts serving, then registers each service.
    pub async fn start(self) -> Result<ServerHandle, ServerError> {
        if self.services.is_empty() {
            return Err(ServerError::BadConfig {
                setting: "services",
                message: "no service to serve; add one with .serve(...)".into(),
            });
        }
        if self.max_frame < 64 {
            return Err(ServerError::BadConfig {
                setting: "max_frame",
                message: format!("{} bytes cannot hold a request header", self.max_frame),
            });
        }
        if self.max_partial_frame_bytes < self.max_frame.saturating_add(4) {
            return Err(ServerError::BadConfig {
                setting: "max_partial_frame_bytes",
                message: format!(
                    "{} bytes cannot hold one frame at the max_frame limit of {} bytes",
                    self.max_partial_frame_bytes, self.max_frame
                ),
            });
        }
        let advertise = match &self.advertise {
            Some(value) => Some(Advertise::parse(value).map_err(|e| ServerError::BadConfig {
                setting: "advertise",
                message: e.to_string(),
            })?),
            None => None,
        };
        let mut services = ServiceMap::default();
        for service in &self.services {
            let key = service.descriptor().key.to_string();
            if services.insert(key.clone(), Arc::clone(service)).is_some() {
                return Err(ServerError::DuplicateService(key));
            }
        }
        let acceptor = match &self.tls {
            Some(tls) => Some(tls.acceptor().map_err(|e| ServerError::BadConfig {
                setting: e.setting,
                message: e.message,
            })?),
            None => None,
        };
        let listener = TcpListener::bind(&self.bind)
            .await
            .map_err(|source| ServerError::Bind {
                addr: self.bind.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: self.bind.clone(),
            source,
        })?;
        let stop = CancellationToken::new();
        let force = CancellationToken::new();
        let connections = TaskTracker::new();
        let partial_budget_size = self.max_partial_frame_bytes.min(Semaphore::MAX_PERMITS);
        let partial_budget = Arc::new(Semaphore::new(partial_budget_size));
        let unsent_total = Arc::default();
        let admission = Arc::new(Admission::new(
            self.max_connections,
            self.max_connections_per_address,
        ));
        let services = Arc::new(services);
        let layers = match &self.auth {
            Some(auth) => {
                let checked = AuthLayer::start(auth, stop.clone()).map_err(|e| {
                    stop.cancel();
                    ServerError::BadConfig {
                        setting: "server.auth.tokens_file",
                        message: e.to_string(),
                    }
                })?;
                Some(Layers::wrap(self.layers.clone(), checked))
            }
            None => self.layers.clone(),
        };
        let context = Arc::new(ConnectionContext {
            stack: layers.as_ref().map(|l| l.build(Arc::clone(&services))),
            services,
            max_frame: self.max_frame,
            max_in_flight: self.max_in_flight.max(1),
            metadata_limits: self.metadata_limits,
            codecs: self.codecs,
            idle_timeout: self.idle_timeout,
            max_unsent: self.max_unsent_bytes,
            frame_timeout: self.frame_timeout,
            partial_budget: Arc::clone(&partial_budget),
            unsent_total: Arc::clone(&unsent_total),
            stop: stop.clone(),
            force: force.clone(),
        });
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            context,
            Arc::clone(&admission),
            connections.clone(),
        ));
        let stats = StatsSource {
            admission,
            unsent_total,
            partial_budget,
            partial_budget_size,
        };
        tracing::info!(addr = %local_addr, services = self.services.len(), "server listening");

        let Some((host, port)) = published(advertise.as_ref(), local_addr) else {
            stop.cancel();
            return Err(ServerError::BadConfig {
                setting: "advertise",
                message: format!("bound to {local_addr} and this host has no non-loopback address to publish; set server.advertise (RPC_ADVERTISE)"),
            });
        };
        let registration = Registration::new(
            self.registry.clone(),
            self.services
                .iter()
                .map(|s| {
                    let mut instance = crate::ServiceInstance::new(
                        &s.descriptor().service_key(),
                        host.clone(),
                        port,
                    );
                    instance.weight = self.weight;
                    instance.metadata = self.metadata.clone();
                    if self.tls.is_some() {
                        instance.transport = Some(crate::registry::TRANSPORT_TLS.to_string());
                    }
                    instance
                })
                .collect(),
            self.propagation_grace,
        );
        let handle = ServerHandle {
            local_addr,
            stop,
            force,
            connections,
            control: ServerControl::new(registration),
            drain_grace: self.drain_grace,
            stats,
        };
        if let Err(e) = handle.control.registration().publish().await {
            // Do not leave a half-started server behind.
            handle.stop.cancel();
            return Err(e);
        }
        Ok(handle)
    }
}

static REFUSED: WarnLimit = WarnLimit::new();

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    context: Arc<ConnectionContext>,
    admission: Arc<Admission>,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = context.stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(full) => {
                super::metrics::rejected(super::metrics::Rejected::Connections);
                if let Some(suppressed) = REFUSED.allow() {
                    let limit = match full {
                        Full::Server => "max_connections",
                        Full::Address => "max_connections_per_address",
                    };
                    tracing::warn!(%peer, limit, suppressed, "connection limit reached and every connection has a call in flight; refusing connection");
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let context = Arc::clone(&context);
        match &tls {
            None => {
                let halves = stream.into_split();
                connections.spawn(serve_connection(halves, peer, None, context, admitted));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    let timeout = context.frame_timeout;
                    if let Some((tls, name)) = handshake(&acceptor, stream, peer, timeout).await {
                        let halves = tokio::io::split(tls);
                        serve_connection(halves, peer, name, context, admitted).await;
                    }
                });
            }
        }
    }
    tracing::debug!("listener closed");
}
