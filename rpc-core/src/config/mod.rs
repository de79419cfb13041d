//! One configuration for apps that embed the framework, in three layers: defaults, then an
//! `rpc.toml` file, then `RPC_*` environment variables; code can change any field afterwards
//! (the builder layer) before calling [`RpcConfig::server_builder`] or
//! [`RpcConfig::client_builder`].
//!
//! ```toml
//! [registry]
//! url = "etcd://127.0.0.1:2379"   # or zookeeper://..., memory://, none
//! ttl_secs = 30
//! heartbeat_secs = 10
//!
//! [server]
//! listen = "0.0.0.0:9101"
//! advertise = "10.0.0.7"          # what consumers dial; HOST[:PORT]
//! max_frame_bytes = 16777216
//!
//! [client]
//! deadline_ms = 10000
//! balancer = "round-robin"
//! policy = "failover"
//! max_attempts = 3
//!
//! [client.ejection]
//! consecutive_failures = 3
//! ```
//!
//! Every key, its environment variable and its default are listed in README's config
//! reference and by [`RpcConfig::keys`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod error;
mod keys;
mod secret;
mod security;

use crate::backoff::Backoff;
use crate::client::{AuthToken, ClientBuilder, ClientTls};
use crate::cluster::{ClusterConfig, EjectionConfig, FaultPolicy};
use crate::defaults;
use crate::protocol::{Codec, MetadataLimits, DEFAULT_MAX_FRAME};
use crate::server::ServerBuilder;

pub use error::ConfigError;
use keys::{Key, Raw, KEYS, SECRET_KEYS};
pub use secret::{redact_url, Secret, SecretUrl};

/// The framework's settings. Build with [`RpcConfig::load`], or start from `default()`.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::RpcConfig;
///
/// let mut config = RpcConfig::default();
/// config.merge_toml("[client]\ndeadline_ms = 500\nbalancer = \"random\"", "rpc.toml").unwrap();
/// config.merge_env([("RPC_DEADLINE_MS".to_string(), "800".to_string())]).unwrap();
/// assert_eq!(config.deadline, Some(Duration::from_millis(800))); // env beats the file
/// assert_eq!(config.balancer, "random");
///
/// let err = RpcConfig::default().merge_toml("[client]\npolicy = \"retry\"", "rpc.toml").unwrap_err();
/// assert!(err.to_string().contains("client.policy"));
/// let client = config.client_builder(); // then .connect(addr) or .discover(registry)
/// # let _ = client;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RpcConfig {
    /// Registry URL, or `None` for no registry (`none`). Default `etcd://127.0.0.1:2379`.
    /// A password in it is shown as `***`.
    pub registry: Option<SecretUrl>,
    /// Registry user (etcd user, ZooKeeper digest user). Default: the URL's, else none.
    pub registry_username: Option<String>,
    /// Registry password, shown as `***`. Default: the URL's, else none.
    pub registry_password: Option<Secret>,
    /// File holding the registry password, read when connecting. Default none.
    pub registry_password_file: Option<PathBuf>,
    /// etcd TLS: CA certificate (PEM) that signed the server's. Default: plain `http://`.
    pub registry_tls_ca: Option<PathBuf>,
    /// etcd TLS: client certificate (PEM), for `--client-cert-auth`. Default none.
    pub registry_tls_cert: Option<PathBuf>,
    /// etcd TLS: the client certificate's private key (PEM). Default none.
    pub registry_tls_key: Option<PathBuf>,
    /// ZooKeeper ACL of created nodes: `creator` (creator all, world read) or `open` (anyone
    /// all). Default: the URL's, else `creator`.
    pub registry_acl: Option<String>,
    /// etcd lease TTL / ZooKeeper session timeout. Default: the URL's, else 30 s.
    pub registry_ttl: Option<Duration>,
    /// Keep-alive interval. Default: the URL's, else ttl/3.
    pub registry_heartbeat: Option<Duration>,
    /// Provider listen address. Default `127.0.0.1:0`.
    pub listen: String,
    /// Provider: address published for consumers, `HOST[:PORT]`. Default: the bound IP, or
    /// this host's primary non-loopback address when bound to all interfaces.
    pub advertise: Option<String>,
    /// The admin HTTP endpoint's address, `HOST:PORT` (`server.admin`). Default: off.
    pub admin: Option<String>,
    /// Largest frame accepted, both sides. Default 16 MiB.
    pub max_frame: usize,
    /// Provider: connections served at once. Default 10,000.
    pub max_connections: usize,
    /// Provider: calls in flight per connection. Default 10,000.
    pub max_in_flight: usize,
    /// Provider: connections from one IP address (`None`: no cap). Default none.
    pub max_connections_per_address: Option<usize>,
    /// Provider: unsent reply bytes above which a connection stops reading. Default 4 MiB.
    pub max_unsent_bytes: usize,
    /// Provider: bytes of partially received frames, server-wide. Default 256 MiB.
    pub max_partial_frame_bytes: usize,
    /// Provider: time a started frame may take, or a peer may leave replies unread. Default 30 s.
    pub frame_timeout: Duration,
    /// Provider: a connection with no call and no frame for this long is closed (`None`:
    /// never). Default 5 minutes.
    pub idle_timeout: Option<Duration>,
    /// Provider: most entries in one call's metadata block. Default 64.
    pub max_metadata_entries: usize,
    /// Provider: most bytes of one call's metadata block. Default 16 KiB.
    pub max_metadata_bytes: usize,
    /// Provider: how long shutdown waits for in-flight calls. Default 10 s.
    pub drain_grace: Duration,
    /// Provider: wait between deregistering and closing. Default 1 s.
    pub propagation_grace: Duration,
    /// Consumer: default deadline of a call, retries included (`None`: none). Default 10 s.
    pub deadline: Option<Duration>,
    /// Consumer: this application's name, sent as `rpc-caller`. Default none.
    pub caller: Option<String>,
    /// Consumer: connect timeout. Default 3 s.
    pub connect_timeout: Duration,
    /// Consumer: request body codec (bincode, json or postcard). Default bincode.
    pub codec: Codec,
    /// Consumer: connections per provider. Default 1.
    pub connections_per_address: usize,
    /// Consumer: load balancer name. Default `round-robin`.
    pub balancer: String,
    /// Consumer: fault policy. Default fail-over.
    pub policy: FaultPolicy,
    /// Consumer: attempts per call under fail-over, the first included. Default 3.
    pub max_attempts: usize,
    /// Consumer: first fail-over backoff. Default 5 ms.
    pub backoff_base: Duration,
    /// Consumer: largest fail-over backoff. Default 250 ms.
    pub backoff_max: Duration,
    /// Consumer: bound on one attempt (`None`: only the deadline). Default none.
    pub attempt_timeout: Option<Duration>,
    /// Consumer: bound on one attempt of an idempotent method (`None`: none). Default 3 s.
    pub idempotent_attempt_timeout: Option<Duration>,
    /// Consumer: ping interval of connections with calls in flight (zero: off). Default 500 ms.
    pub ping_interval: Duration,
    /// Consumer: silence after which a busy connection is declared dead. Default 1.5 s.
    pub ping_timeout: Duration,
    /// Consumer: largest percentage of a service's providers ejected at once. Default 50.
    pub ejection_max_percent: u32,
    /// Consumer: failures in a row that eject a provider (0 turns ejection off). Default 3.
    pub ejection_failures: u32,
    /// Consumer: first ejection cool-down. Default 1 s.
    pub ejection_base_cooldown: Duration,
    /// Consumer: longest ejection cool-down. Default 30 s.
    pub ejection_max_cooldown: Duration,
    /// Consumer: keep the last list when the registry suddenly reports none. Default on.
    pub empty_protection: bool,
    /// Consumer: file that keeps the last known provider lists. Default none.
    pub snapshot_file: Option<PathBuf>,
    /// Consumer: a directory entry (and its registry watch) no call used for this long is
    /// dropped (`None`: never). Default 10 minutes.
    pub directory_idle: Option<Duration>,
    /// Consumer: most directory entries (registry watches) live at once. Default 4,096.
    pub max_watches: usize,
    /// Consumer: the routing tag of calls that carry none and are not made from a tagged
    /// served call. Default none (untagged).
    pub tag: Option<String>,
    /// Provider: PEM certificate chain; with [`tls_key`](Self::tls_key), serve TLS only.
    pub tls_cert: Option<PathBuf>,
    /// Provider: PEM private key of [`tls_cert`](Self::tls_cert).
    pub tls_key: Option<PathBuf>,
    /// Provider: PEM CA(s) whose client certificates are required (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Provider: the tokens file of caller authentication (`caller-name token` lines).
    pub auth_tokens_file: Option<PathBuf>,
    /// Provider: service → callers allowed to call it (needs a tokens file).
    pub auth_allow: BTreeMap<String, BTreeSet<String>>,
    /// Consumer: TLS trust roots, client certificate and server name.
    pub client_tls: ClientTls,
    /// Consumer: the bearer token sent with every call (`Debug` shows `***`).
    pub auth_token: Option<AuthToken>,
}

impl Default for RpcConfig {
    fn default() -> Self {
        let cluster = ClusterConfig::default();
        RpcConfig {
            registry: Some("etcd://127.0.0.1:2379".into()),
            registry_username: None,
            registry_password: None,
            registry_password_file: None,
            registry_tls_ca: None,
            registry_tls_cert: None,
            registry_tls_key: None,
            registry_acl: None,
            registry_ttl: None,
            registry_heartbeat: None,
            listen: defaults::LISTEN.to_string(),
            advertise: None,
            admin: None,
            max_frame: DEFAULT_MAX_FRAME,
            max_connections: defaults::MAX_CONNECTIONS,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS,
            max_unsent_bytes: defaults::MAX_UNSENT_BYTES,
            max_partial_frame_bytes: defaults::MAX_PARTIAL_FRAME_BYTES,
            frame_timeout: defaults::FRAME_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_metadata_entries: MetadataLimits::default().max_entries,
            max_metadata_bytes: MetadataLimits::default().max_bytes,
            drain_grace: defaults::DRAIN_GRACE,
            propagation_grace: defaults::PROPAGATION_GRACE,
            deadline: defaults::DEADLINE,
            caller: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            codec: defaults::CODEC,
            connections_per_address: defaults::CONNECTIONS_PER_ADDRESS,
            balancer: cluster.balancer.name().to_string(),
            policy: cluster.policy,
            max_attempts: cluster.max_attempts,
            backoff_base: cluster.retry_backoff.base,
            backoff_max: cluster.retry_backoff.max,
            attempt_timeout: cluster.attempt_timeout,
            idempotent_attempt_timeout: cluster.idempotent_attempt_timeout,
            ping_interval: defaults::PING_INTERVAL,
            ping_timeout: defaults::PING_TIMEOUT,
            ejection_max_percent: (cluster.ejection.max_ejected_fraction * 100.0).round() as u32,
            ejection_failures: cluster.ejection.consecutive_failures,
            ejection_base_cooldown: cluster.ejection.base_cooldown,
            ejection_max_cooldown: cluster.ejection.max_cooldown,
            empty_protection: cluster.directory.empty_protection,
            snapshot_file: None,
            directory_idle: cluster.directory.idle_timeout,
            max_watches: cluster.directory.max_watches,
            tag: cluster.tag,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            auth_tokens_file: None,
            auth_allow: BTreeMap::new(),
            client_tls: ClientTls::default(),
            auth_token: None,
        }
    }
}

impl RpcConfig {
    /// Every key as `(dotted name, environment variable, expected form)`.
    pub fn keys() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
        KEYS.iter().map(|k| (k.name, k.env, k.expected))
    }

    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<RpcConfig, ConfigError> {
        let mut config = RpcConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            config.merge_toml(&text, &path.display().to_string())?;
        }
        config.merge_env(std::env::vars())?;
        Ok(config)
    }

    /// Applies the keys of a TOML document; `origin` names it in errors.
    pub fn merge_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: PathBuf::from(origin),
                message: e.to_string(),
            })?;
        let mut flat = BTreeMap::new();
        flatten("", &table, &mut flat);
        for (name, value) in flat {
            let key =
                KEYS.iter()
                    .find(|k| k.name == name)
                    .ok_or_else(|| ConfigError::UnknownKey {
                        key: name.clone(),
                        origin: origin.to_string(),
                        known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
                    })?;
            self.apply(key, &Raw::Toml(value), origin)?;
        }
        self.check(origin)
    }

    /// Applies `RPC_*` variables from `vars`; unknown `RPC_*` names are errors.
    pub fn merge_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            if !name.starts_with("RPC_") || name == "RPC_BIN_DIR" || name == "RPC_CONFIG" {
                continue;
            }
            let key =
                KEYS.iter()
                    .find(|k| k.env == name)
                    .ok_or_else(|| ConfigError::UnknownKey {
                        key: name.clone(),
                        origin: "environment".to_string(),
                        known: KEYS.iter().map(|k| k.env).collect::<Vec<_>>().join(", "),
                    })?;
            self.apply(key, &Raw::Env(&value), "environment")?;
        }
        self.check("environment")
    }

    fn apply(&mut self, key: &Key, raw: &Raw<'_>, origin: &str) -> Result<(), ConfigError> {
        (key.apply)(self, raw).ok_or_else(|| ConfigError::BadValue {
            key: format!("{} ({})", key.name, key.env),
            origin: origin.to_string(),
            // A secret is never echoed, nor a password in a URL.
            value: if SECRET_KEYS.contains(&key.name) {
                "***".to_string()
            } else {
                redact_url(&raw.shown())
            },
            expected: key.expected.to_string(),
        })
    }

    /// Checks what no single key can: relations between keys.
    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        if let (Some(ttl), Some(heartbeat)) = (self.registry_ttl, self.registry_heartbeat) {
            if heartbeat >= ttl {
                return Err(ConfigError::BadValue {
                    key: "registry.heartbeat_secs (RPC_REGISTRY_HEARTBEAT)".into(),
                    origin: origin.to_string(),
                    value: format!("{}", heartbeat.as_secs_f64()),
                    expected: format!(
                        "seconds shorter than registry.ttl_secs ({})",
                        ttl.as_secs_f64()
                    ),
                });
            }
        }
        if self.max_partial_frame_bytes < self.max_frame.saturating_add(4) {
            return Err(ConfigError::BadValue {
                key: "server.max_partial_frame_bytes (RPC_MAX_PARTIAL_FRAME_BYTES)".into(),
                origin: origin.to_string(),
                value: self.max_partial_frame_bytes.to_string(),
                expected: format!(
                    "at least server.max_frame_bytes + 4 ({})",
                    self.max_frame.saturating_add(4)
                ),
            });
        }
        if let Some((set, missing)) = self.half_set() {
            return Err(ConfigError::BadValue {
                key: set.into(),
                origin: origin.to_string(),
                value: "set".into(),
                expected: format!("{missing} set as well"),
            });
        }
        if self.registry_tls_cert.is_some() != self.registry_tls_key.is_some() {
            return Err(ConfigError::BadValue {
                key: "registry.tls.cert (RPC_REGISTRY_TLS_CERT)".into(),
                origin: origin.to_string(),
                value: "only one of registry.tls.cert and registry.tls.key".into(),
                expected: "both (a client certificate and its key) or neither".into(),
            });
        }
        if self.backoff_base > self.backoff_max {
            return Err(ConfigError::BadValue {
                key: "client.backoff_base_ms (RPC_BACKOFF_BASE_MS)".into(),
                origin: origin.to_string(),
                value: format!("{}", self.backoff_base.as_millis()),
                expected: format!(
                    "at most client.backoff_max_ms ({})",
                    self.backoff_max.as_millis()
                ),
            });
        }
        Ok(())
    }

    /// The registry URL with `ttl` and `heartbeat` added to its query when set here.
    /// The URL may carry a password: never log it (log [`RpcConfig::registry`] instead).
    pub fn registry_url(&self) -> Option<String> {
        let mut url = self.registry.as_deref()?.to_string();
        let mut add = |name: &str, value: Option<Duration>| {
            if let Some(v) = value {
                if !url.contains(&format!("{name}=")) {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str(&format!("{name}={}", v.as_secs_f64()));
                }
            }
        };
        add("ttl", self.registry_ttl);
        add("heartbeat", self.registry_heartbeat);
        Some(url)
    }

    /// A server builder with the server settings (add services and a registry to it).
    pub fn server_builder(&self) -> ServerBuilder {
        let builder = ServerBuilder::default()
            .bind(self.listen.clone())
            .max_frame(self.max_frame)
            .max_connections(self.max_connections)
            .max_in_flight(self.max_in_flight)
            .max_connections_per_address(self.max_connections_per_address)
            .max_unsent_bytes(self.max_unsent_bytes)
            .max_partial_frame_bytes(self.max_partial_frame_bytes)
            .frame_timeout(self.frame_timeout)
            .idle_timeout(self.idle_timeout)
            .metadata_limits(MetadataLimits {
                max_entries: self.max_metadata_entries,
                max_bytes: self.max_metadata_bytes,
            })
            .drain_grace(self.drain_grace)
            .propagation_grace(self.propagation_grace);
        let builder = self.secure_server(builder);
        match &self.advertise {
            Some(advertise) => builder.advertise(advertise.clone()),
            None => builder,
        }
    }

    /// The cluster settings: balancer, fault policy, retries, backoff, ejection, directory.
    pub fn cluster_config(&self) -> ClusterConfig {
        let mut cluster = ClusterConfig::default()
            .policy(self.policy)
            .max_attempts(self.max_attempts)
            .attempt_timeout(self.attempt_timeout)
            .idempotent_attempt_timeout(self.idempotent_attempt_timeout)
            .empty_protection(self.empty_protection);
        // The name was checked when it was set; an unknown one keeps the default.
        if let Ok(named) = cluster.clone().balancer_named(&self.balancer) {
            cluster = named;
        }
        cluster.retry_backoff = Backoff {
            base: self.backoff_base,
            max: self.backoff_max,
            ..cluster.retry_backoff
        };
        cluster.ejection = EjectionConfig {
            enabled: self.ejection_failures > 0,
            consecutive_failures: self.ejection_failures.max(1),
            base_cooldown: self.ejection_base_cooldown,
            max_cooldown: self.ejection_max_cooldown,
            max_ejected_fraction: f64::from(self.ejection_max_percent) / 100.0,
            ..cluster.ejection
        };
        if let Some(path) = &self.snapshot_file {
            cluster = cluster.snapshot_file(path.clone());
        }
        cluster.directory.idle_timeout = self.directory_idle;
        cluster.directory.max_watches = self.max_watches;
        cluster.tag = self.tag.clone();
        cluster
    }

    /// A client builder with the client settings (finish it with `connect` or `discover`).
    pub fn client_builder(&self) -> ClientBuilder {
        let builder = match &self.caller {
            Some(name) => ClientBuilder::default().caller(name.clone()),
            None => ClientBuilder::default(),
        };
        let builder = builder
            .codec(self.codec)
            .deadline(self.deadline)
            .connect_timeout(self.connect_timeout)
            .connections_per_address(self.connections_per_address)
            .max_frame(self.max_frame)
            .ping_interval(self.ping_interval)
            .ping_timeout(self.ping_timeout)
            .cluster(self.cluster_config());
        self.secure_client(builder)
    }
}

fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut BTreeMap<String, &'a toml::Value>) {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out),
            other => {
                out.insert(name, other);
            }
        }
    }
}
