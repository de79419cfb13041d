//! Every configuration key: its dotted name, `RPC_*` variable, expected form, and how a
//! value from a file or the environment is applied.

use std::path::PathBuf;
use std::time::Duration;

use super::RpcConfig;
use crate::client::AuthToken;
use crate::cluster::ClusterConfig;
use crate::protocol::Codec;

/// A value from a file (typed) or the environment (text).
pub(super) enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    pub(super) fn shown(&self) -> String {
        match self {
            Raw::Toml(v) => v.to_string(),
            Raw::Env(s) => format!("{s:?}"),
        }
    }

    fn string(&self) -> Option<String> {
        match self {
            Raw::Toml(toml::Value::String(s)) => Some(s.clone()),
            Raw::Env(s) => Some(s.to_string()),
            _ => None,
        }
    }

    fn integer(&self) -> Option<u64> {
        match self {
            Raw::Toml(toml::Value::Integer(i)) => u64::try_from(*i).ok(),
            Raw::Env(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn seconds(&self) -> Option<Duration> {
        let secs = match self {
            Raw::Toml(toml::Value::Integer(i)) => *i as f64,
            Raw::Toml(toml::Value::Float(f)) => *f,
            Raw::Env(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        (secs.is_finite() && secs > 0.0 && secs <= 86_400.0).then(|| Duration::from_secs_f64(secs))
    }

    fn boolean(&self) -> Option<bool> {
        match self {
            Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
            Raw::Env(s) => match s.trim() {
                "true" | "1" | "on" | "yes" => Some(true),
                "false" | "0" | "off" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One path, or several: a TOML array, or the environment's path list (`a.pem:b.pem`).
fn paths(raw: &Raw<'_>) -> Option<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = match raw {
        Raw::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().filter(|s| !s.is_empty()).map(PathBuf::from))
            .collect::<Option<_>>()?,
        Raw::Env(s) => std::env::split_paths(s)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        other => vec![PathBuf::from(other.string().filter(|s| !s.is_empty())?)],
    };
    (!paths.is_empty()).then_some(paths)
}

fn path(raw: &Raw<'_>) -> Option<PathBuf> {
    raw.string().filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// An allow-list: a TOML array of `service=caller,caller` strings, or the same joined by `;`.
fn allow_list(raw: &Raw<'_>) -> Option<String> {
    match raw {
        Raw::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|rules| rules.join(";")),
        other => other.string(),
    }
}

pub(super) type Apply = fn(&mut RpcConfig, &Raw<'_>) -> Option<()>;

/// One key: its dotted name, environment variable, expected form, and how to apply it.
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) env: &'static str,
    pub(super) expected: &'static str,
    pub(super) apply: Apply,
}

fn ms(raw: &Raw<'_>) -> Option<Duration> {
    raw.integer().map(Duration::from_millis)
}

fn positive(raw: &Raw<'_>) -> Option<usize> {
    raw.integer()
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok())
}

/// Keys whose values are never shown, not even in an error about a bad value.
pub(super) const SECRET_KEYS: &[&str] = &["registry.password", "client.auth.token"];

pub(super) const KEYS: &[Key] = &[
    Key { name: "registry.url", env: "RPC_REGISTRY", expected: "a registry URL (etcd://host:port, zookeeper://host:port, memory://) or \"none\"",
        apply: |c, r| { let s = r.string().filter(|s| s == "none" || s.contains("://"))?; c.registry = (s != "none").then(|| s.into()); Some(()) } },
    Key { name: "registry.username", env: "RPC_REGISTRY_USERNAME", expected: "a user name (etcd user or ZooKeeper digest user)",
        apply: |c, r| { c.registry_username = Some(r.string().filter(|s| !s.is_empty())?); Some(()) } },
    Key { name: "registry.password", env: "RPC_REGISTRY_PASSWORD", expected: "a password (text)",
        apply: |c, r| { c.registry_password = Some(super::Secret::new(r.string()?)); Some(()) } },
    Key { name: "registry.password_file", env: "RPC_REGISTRY_PASSWORD_FILE", expected: "a file path; the file holds the password (one trailing newline is ignored)",
        apply: |c, r| { c.registry_password_file = Some(path(r)?); Some(()) } },
    Key { name: "registry.tls.ca", env: "RPC_REGISTRY_TLS_CA", expected: "a PEM file path: the CA that signed etcd's certificate",
        apply: |c, r| { c.registry_tls_ca = Some(path(r)?); Some(()) } },
    Key { name: "registry.tls.cert", env: "RPC_REGISTRY_TLS_CERT", expected: "a PEM file path: the client certificate for etcd",
        apply: |c, r| { c.registry_tls_cert = Some(path(r)?); Some(()) } },
    Key { name: "registry.tls.key", env: "RPC_REGISTRY_TLS_KEY", expected: "a PEM file path: the client certificate's private key",
        apply: |c, r| { c.registry_tls_key = Some(path(r)?); Some(()) } },
    Key { name: "registry.acl", env: "RPC_REGISTRY_ACL", expected: "\"creator\" (creator all, world read) or \"open\" (anyone all)",
        apply: |c, r| { c.registry_acl = Some(r.string().filter(|s| s == "creator" || s == "open")?); Some(()) } },
    Key { name: "registry.ttl_secs", env: "RPC_REGISTRY_TTL", expected: "a positive number of seconds",
        apply: |c, r| { c.registry_ttl = Some(r.seconds()?); Some(()) } },
    Key { name: "registry.heartbeat_secs", env: "RPC_REGISTRY_HEARTBEAT", expected: "a positive number of seconds",
        apply: |c, r| { c.registry_heartbeat = Some(r.seconds()?); Some(()) } },
    Key { name: "server.listen", env: "RPC_LISTEN", expected: "host:port, e.g. 127.0.0.1:9101",
        apply: |c, r| { let s = r.string().filter(|s| s.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()))?; c.listen = s; Some(()) } },
    Key { name: "server.advertise", env: "RPC_ADVERTISE", expected: "HOST[:PORT] consumers dial, e.g. 10.0.0.7 or provider-1.internal:9101",
        apply: |c, r| { let s = r.string()?; crate::server::Advertise::parse(&s).ok()?; c.advertise = Some(s); Some(()) } },
    Key { name: "server.admin", env: "RPC_ADMIN", expected: "host:port of the admin HTTP endpoint, e.g. 127.0.0.1:9102",
        apply: |c, r| { let s = r.string().filter(|s| s.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()))?; c.admin = Some(s); Some(()) } },
    Key { name: "server.max_frame_bytes", env: "RPC_MAX_FRAME", expected: "a number of bytes from 1024 to 4294967295",
        apply: |c, r| { c.max_frame = r.integer().filter(|n| (1024..=u64::from(u32::MAX)).contains(n))? as usize; Some(()) } },
    Key { name: "server.max_connections", env: "RPC_MAX_CONNECTIONS", expected: "a positive integer",
        apply: |c, r| { c.max_connections = positive(r)?; Some(()) } },
    Key { name: "server.max_in_flight", env: "RPC_MAX_IN_FLIGHT", expected: "a positive integer",
        apply: |c, r| { c.max_in_flight = positive(r)?; Some(()) } },
    Key { name: "server.max_connections_per_address", env: "RPC_MAX_CONNECTIONS_PER_ADDRESS", expected: "an integer (0 = no cap)",
        apply: |c, r| { let n = usize::try_from(r.integer()?).ok()?; c.max_connections_per_address = (n > 0).then_some(n); Some(()) } },
    Key { name: "server.max_unsent_bytes", env: "RPC_MAX_UNSENT_BYTES", expected: "a positive number of bytes",
        apply: |c, r| { c.max_unsent_bytes = positive(r)?; Some(()) } },
    Key { name: "server.max_partial_frame_bytes", env: "RPC_MAX_PARTIAL_FRAME_BYTES", expected: "a number of bytes, at least server.max_frame_bytes + 4",
        apply: |c, r| { c.max_partial_frame_bytes = positive(r)?; Some(()) } },
    Key { name: "server.frame_timeout_ms", env: "RPC_FRAME_TIMEOUT_MS", expected: "milliseconds, a positive integer",
        apply: |c, r| { c.frame_timeout = ms(r).filter(|d| !d.is_zero())?; Some(()) } },
    Key { name: "server.idle_timeout_ms", env: "RPC_IDLE_TIMEOUT_MS", expected: "milliseconds, an integer (0 = never)",
        apply: |c, r| { let d = ms(r)?; c.idle_timeout = (!d.is_zero()).then_some(d); Some(()) } },
    Key { name: "server.max_metadata_entries", env: "RPC_MAX_METADATA_ENTRIES", expected: "an integer from 1 to 65535",
        apply: |c, r| { c.max_metadata_entries = positive(r).filter(|n| *n <= 65_535)?; Some(()) } },
    Key { name: "server.max_metadata_bytes", env: "RPC_MAX_METADATA_BYTES", expected: "a positive number of bytes",
        apply: |c, r| { c.max_metadata_bytes = positive(r)?; Some(()) } },
    Key { name: "server.drain_grace_ms", env: "RPC_DRAIN_GRACE_MS", expected: "milliseconds, an integer",
        apply: |c, r| { c.drain_grace = ms(r)?; Some(()) } },
    Key { name: "server.propagation_grace_ms", env: "RPC_PROPAGATION_GRACE_MS", expected: "milliseconds, an integer",
        apply: |c, r| { c.propagation_grace = ms(r)?; Some(()) } },
    Key { name: "client.deadline_ms", env: "RPC_DEADLINE_MS", expected: "milliseconds, an integer (0 = no deadline)",
        apply: |c, r| { let d = ms(r)?; c.deadline = (!d.is_zero()).then_some(d); Some(()) } },
    Key { name: "client.caller", env: "RPC_CALLER", expected: "a name of UTF-8 text, at most 65535 bytes, sent as rpc-caller",
        apply: |c, r| { let s = r.string().filter(|s| !s.is_empty() && s.len() <= 65_535)?; c.caller = Some(s); Some(()) } },
    Key { name: "client.connect_timeout_ms", env: "RPC_CONNECT_TIMEOUT_MS", expected: "milliseconds, a positive integer",
        apply: |c, r| { c.connect_timeout = ms(r).filter(|d| !d.is_zero())?; Some(()) } },
    Key { name: "client.codec", env: "RPC_CODEC", expected: "\"bincode\", \"json\" or \"postcard\"",
        apply: |c, r| { c.codec = Codec::from_name(&r.string()?)?; Some(()) } },
    Key { name: "client.connections_per_address", env: "RPC_CONNECTIONS_PER_ADDRESS", expected: "a positive integer",
        apply: |c, r| { c.connections_per_address = positive(r)?; Some(()) } },
    Key { name: "client.balancer", env: "RPC_BALANCER", expected: "one of round-robin, random, weighted-random, weighted-round-robin, consistent-hash, least-loaded",
        apply: |c, r| { let s = r.string()?; ClusterConfig::default().balancer_named(&s).ok()?; c.balancer = s; Some(()) } },
    Key { name: "client.policy", env: "RPC_POLICY", expected: "one of failfast, failover, failsafe, failback",
        apply: |c, r| { c.policy = r.string()?.parse().ok()?; Some(()) } },
    Key { name: "client.max_attempts", env: "RPC_MAX_ATTEMPTS", expected: "a positive integer",
        apply: |c, r| { c.max_attempts = positive(r)?; Some(()) } },
    Key { name: "client.backoff_base_ms", env: "RPC_BACKOFF_BASE_MS", expected: "milliseconds, an integer",
        apply: |c, r| { c.backoff_base = ms(r)?; Some(()) } },
    Key { name: "client.backoff_max_ms", env: "RPC_BACKOFF_MAX_MS", expected: "milliseconds, an integer",
        apply: |c, r| { c.backoff_max = ms(r)?; Some(()) } },
    Key { name: "client.attempt_timeout_ms", env: "RPC_ATTEMPT_TIMEOUT_MS", expected: "milliseconds, an integer (0 = none)",
        apply: |c, r| { let d = ms(r)?; c.attempt_timeout = (!d.is_zero()).then_some(d); Some(()) } },
    Key { name: "client.idempotent_attempt_timeout_ms", env: "RPC_IDEMPOTENT_ATTEMPT_TIMEOUT_MS", expected: "milliseconds, an integer (0 = none)",
        apply: |c, r| { let d = ms(r)?; c.idempotent_attempt_timeout = (!d.is_zero()).then_some(d); Some(()) } },
    Key { name: "client.ping_interval_ms", env: "RPC_PING_INTERVAL_MS", expected: "milliseconds, an integer (0 = no health checks)",
        apply: |c, r| { c.ping_interval = ms(r)?; Some(()) } },
    Key { name: "client.ping_timeout_ms", env: "RPC_PING_TIMEOUT_MS", expected: "milliseconds, a positive integer",
        apply: |c, r| { c.ping_timeout = ms(r).filter(|d| !d.is_zero())?; Some(()) } },
    Key { name: "client.empty_protection", env: "RPC_EMPTY_PROTECTION", expected: "true or false",
        apply: |c, r| { c.empty_protection = r.boolean()?; Some(()) } },
    Key { name: "client.directory_idle_ms", env: "RPC_DIRECTORY_IDLE_MS", expected: "milliseconds, an integer (0 = never drop)",
        apply: |c, r| { let d = ms(r)?; c.directory_idle = (!d.is_zero()).then_some(d); Some(()) } },
    Key { name: "client.max_watches", env: "RPC_MAX_WATCHES", expected: "a positive integer",
        apply: |c, r| { c.max_watches = positive(r)?; Some(()) } },
    Key { name: "client.tag", env: "RPC_TAG", expected: "a routing tag (letters, digits, '-', '_', '.'; empty = untagged)",
        apply: |c, r| { let s = r.string().filter(|s| s.len() <= 255 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))?; c.tag = (!s.is_empty()).then_some(s); Some(()) } },
    Key { name: "client.snapshot_file", env: "RPC_SNAPSHOT_FILE", expected: "a file path",
        apply: |c, r| { c.snapshot_file = Some(PathBuf::from(r.string().filter(|s| !s.is_empty())?)); Some(()) } },
    Key { name: "client.ejection.consecutive_failures", env: "RPC_EJECTION_FAILURES", expected: "an integer (0 turns ejection off)",
        apply: |c, r| { c.ejection_failures = u32::try_from(r.integer()?).ok()?; Some(()) } },
    Key { name: "client.ejection.base_cooldown_ms", env: "RPC_EJECTION_BASE_COOLDOWN_MS", expected: "milliseconds, a positive integer",
        apply: |c, r| { c.ejection_base_cooldown = ms(r).filter(|d| !d.is_zero())?; Some(()) } },
    Key { name: "client.ejection.max_cooldown_ms", env: "RPC_EJECTION_MAX_COOLDOWN_MS", expected: "milliseconds, a positive integer",
        apply: |c, r| { c.ejection_max_cooldown = ms(r).filter(|d| !d.is_zero())?; Some(()) } },
    Key { name: "client.ejection.max_ejected_percent", env: "RPC_EJECTION_MAX_PERCENT", expected: "a percentage, an integer from 0 to 100",
        apply: |c, r| { c.ejection_max_percent = u32::try_from(r.integer().filter(|n| *n <= 100)?).ok()?; Some(()) } },
    Key { name: "server.tls.cert", env: "RPC_TLS_CERT", expected: "a PEM file of the provider's certificate chain",
        apply: |c, r| { c.tls_cert = Some(path(r)?); Some(()) } },
    Key { name: "server.tls.key", env: "RPC_TLS_KEY", expected: "a PEM file of the provider's private key",
        apply: |c, r| { c.tls_key = Some(path(r)?); Some(()) } },
    Key { name: "server.tls.client_ca", env: "RPC_TLS_CLIENT_CA", expected: "a PEM file of the CA(s) whose client certificates are required",
        apply: |c, r| { c.tls_client_ca = Some(path(r)?); Some(()) } },
    Key { name: "server.auth.tokens_file", env: "RPC_AUTH_TOKENS_FILE", expected: "a file of `caller-name token` lines",
        apply: |c, r| { c.auth_tokens_file = Some(path(r)?); Some(()) } },
    Key { name: "server.auth.allow", env: "RPC_AUTH_ALLOW", expected: "service=caller,caller rules (a TOML array, or joined by ';')",
        apply: |c, r| { c.auth_allow = crate::server::ServerAuth::parse_allow(&allow_list(r)?)?; Some(()) } },
    Key { name: "client.tls.ca", env: "RPC_TLS_CA", expected: "PEM file(s) of the CA certificates providers are checked against (an array, or a path list)",
        apply: |c, r| { c.client_tls.ca = paths(r)?; Some(()) } },
    Key { name: "client.tls.cert", env: "RPC_TLS_CLIENT_CERT", expected: "a PEM file of this client's certificate chain",
        apply: |c, r| { c.client_tls.cert = Some(path(r)?); Some(()) } },
    Key { name: "client.tls.key", env: "RPC_TLS_CLIENT_KEY", expected: "a PEM file of this client's private key",
        apply: |c, r| { c.client_tls.key = Some(path(r)?); Some(()) } },
    Key { name: "client.tls.server_name", env: "RPC_TLS_SERVER_NAME", expected: "the DNS name (or IP) providers' certificates must carry",
        apply: |c, r| { c.client_tls.server_name = Some(r.string().filter(|s| !s.is_empty())?); Some(()) } },
    Key { name: "client.tls.platform_roots", env: "RPC_TLS_PLATFORM_ROOTS", expected: "true or false (also trust the platform's CA certificates)",
        apply: |c, r| { c.client_tls.platform_roots = r.boolean()?; Some(()) } },
    Key { name: "client.auth.token", env: "RPC_AUTH_TOKEN", expected: "a bearer token (text without spaces)",
        apply: |c, r| { let s = r.string().filter(|s| !s.trim().is_empty() && !s.trim().contains(char::is_whitespace))?; c.auth_token = Some(AuthToken::new(s)); Some(()) } },
    Key { name: "client.auth.token_file", env: "RPC_AUTH_TOKEN_FILE", expected: "a readable file whose first line is the bearer token",
        apply: |c, r| { c.auth_token = Some(AuthToken::from_file(&path(r)?).ok()?); Some(()) } },
];
