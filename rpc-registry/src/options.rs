//! Registry URLs and their options.

use std::time::Duration;

use rpc_core::registry::RegistryError;

use crate::backend_options::{nacos_name, redis_db};
use crate::credentials::{self, Credentials};
use crate::security::{self, NodeAcl, RegistryTls};

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `memory://[name]`
    Memory,
    /// `etcd://`
    Etcd,
    /// `zookeeper://` or `zk://`
    Zookeeper,
    /// `redis://[user:password@]host:port[/db]`
    Redis,
    /// `nacos://host:port[?namespace=...&group=...]`
    Nacos,
}

/// Options shared by the backends. Every field has a default; the URL query overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryOptions {
    /// Root prefix of the layout, default `/rpc`.
    pub root: String,
    /// etcd lease TTL / ZooKeeper session timeout (`ttl`, seconds), default 30 s.
    pub ttl: Duration,
    /// Keep-alive and self-check interval (`heartbeat`, seconds), default ttl/3.
    pub heartbeat: Duration,
    /// Time allowed to open a connection (`connect_timeout`, seconds), default 5 s.
    pub connect_timeout: Duration,
    /// Time allowed for one request (`request_timeout`, seconds), default 5 s.
    pub request_timeout: Duration,
    /// Redis database number, the URL's path (`redis://host:port/2`), default 0.
    pub db: u32,
    /// User name and password from the URL's user-info part (etcd, ZooKeeper digest, Redis);
    /// `Debug` hides the password.
    pub credentials: Option<Credentials>,
    /// etcd TLS (`tls_ca`, `tls_cert`, `tls_key`); `None`: plain `http://`.
    pub tls: Option<RegistryTls>,
    /// ACL of the ZooKeeper nodes this client creates (`acl`), default creator all, world read.
    pub acl: NodeAcl,
    /// Nacos namespace id (`namespace`), default `""`: Nacos's `public`.
    pub namespace: String,
    /// Nacos group (`group`), default `DEFAULT_GROUP`.
    pub group: String,
    /// Nacos gRPC port (`grpc_port`), default the HTTP port + 1000 (Nacos's convention).
    pub grpc_port: Option<u16>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        let ttl = Duration::from_secs(30);
        RegistryOptions {
            root: "/rpc".to_string(),
            ttl,
            heartbeat: ttl / 3,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            db: 0,
            credentials: None,
            tls: None,
            acl: NodeAcl::default(),
            namespace: String::new(),
            group: "DEFAULT_GROUP".to_string(),
            grpc_port: None,
        }
    }
}

/// A parsed registry URL: scheme, endpoints and options.
///
/// ```
/// use std::time::Duration;
/// use rpc_registry::{RegistryUrl, Scheme};
///
/// let url = RegistryUrl::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/apps?ttl=2").unwrap();
/// assert_eq!(url.scheme, Scheme::Etcd);
/// assert_eq!(url.endpoints.len(), 2);
/// assert_eq!(url.options.root, "/apps");
/// assert_eq!(url.options.ttl, Duration::from_secs(2));
/// assert!(RegistryUrl::parse("etcd://10.0.0.1:2379?tll=2").unwrap_err().to_string().contains("tll"));
///
/// // The same options from code, checked the same way; then `rpc_registry::connect_with(url)`.
/// let url = RegistryUrl::parse("zookeeper://10.0.0.1:2181").unwrap()
///     .ttl(Duration::from_secs(10)).unwrap()
///     .heartbeat(Duration::from_secs(2)).unwrap()
///     .root("/apps").unwrap();
/// assert_eq!(url.options.heartbeat, Duration::from_secs(2));
/// assert!(url.clone().heartbeat(Duration::from_secs(60)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryUrl {
    /// The backend.
    pub scheme: Scheme,
    /// `host:port` endpoints (the name, for `memory://`).
    pub endpoints: Vec<String>,
    /// Options from the path and query, over the defaults.
    pub options: RegistryOptions,
    /// The URL as given, for messages, with any password replaced by `***`.
    pub original: String,
}

impl std::fmt::Display for RegistryUrl {
    /// The URL as given, with any password as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.original)
    }
}

impl RegistryUrl {
    /// Parses `scheme://host:port[,host:port...][/root][?option=value&...]`.
    ///
    /// Options: `ttl`, `heartbeat`, `connect_timeout`, `request_timeout` (seconds, fractions
    /// allowed) and `root`. Unknown options are an error, so a typo never goes unnoticed.
    ///
    /// `redis://[user:password@]host:port[/db]` takes one endpoint, the database number as its
    /// path (so its root comes only from `?root=`) and optional percent-encoded credentials.
    pub fn parse(url: &str) -> Result<RegistryUrl, RegistryError> {
        let shown = rpc_core::config::redact_url(url);
        let bad = |message: String| RegistryError::BadUrl {
            url: shown.clone(),
            message,
        };
        let (scheme_str, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://..., e.g. etcd://127.0.0.1:2379".into()))?;
        let scheme = match scheme_str {
            "memory" => Scheme::Memory,
            "etcd" => Scheme::Etcd,
            "zookeeper" | "zk" => Scheme::Zookeeper,
            "redis" => Scheme::Redis,
            "nacos" => Scheme::Nacos,
            other => {
                return Err(bad(format!(
                    "unknown scheme {other:?}; expected memory, etcd, zookeeper, zk, redis or nacos"
                )))
            }
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        // The user-info ends at the last '@' before the query, so a '/' in a password that was
        // not percent-encoded still ends up in the password (and hidden), not in the path.
        let (credentials, before_query) =
            credentials::split_user_info(before_query).map_err(&bad)?;
        if credentials.is_some() && matches!(scheme, Scheme::Memory | Scheme::Nacos) {
            return Err(bad(format!("{scheme_str}:// takes no user:password@")));
        }
        let (hosts, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], Some(&before_query[i..])),
            None => (before_query, None),
        };
        let mut options = RegistryOptions {
            credentials,
            ..RegistryOptions::default()
        };
        let hosts = if scheme == Scheme::Redis {
            if let Some(path) = path {
                options.db = redis_db(path).map_err(&bad)?;
            }
            if hosts.contains(',') {
                return Err(bad(
                    "redis:// takes one host:port (Sentinel and Cluster are not supported)".into(),
                ));
            }
            hosts
        } else if scheme == Scheme::Nacos {
            if path.is_some_and(|p| !p.trim_matches('/').is_empty()) {
                return Err(bad(
                    "nacos:// takes no path; choose the namespace and group with ?namespace=&group="
                        .into(),
                ));
            }
            hosts
        } else {
            if let Some(path) = path {
                let root = path.trim_end_matches('/');
                if !root.is_empty() {
                    options.root = root.to_string();
                }
            }
            hosts
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .collect();
        if scheme != Scheme::Memory {
            if endpoints.is_empty() {
                return Err(bad("no host:port given".into()));
            }
            for endpoint in &endpoints {
                check_endpoint(endpoint).map_err(&bad)?;
            }
        }
        let mut heartbeat_set = false;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "ttl" => options.ttl = seconds(key, value)?,
                "heartbeat" => {
                    options.heartbeat = seconds(key, value)?;
                    heartbeat_set = true;
                }
                "connect_timeout" => options.connect_timeout = seconds(key, value)?,
                "request_timeout" => options.request_timeout = seconds(key, value)?,
                "root" if scheme != Scheme::Nacos => options.root = root(value)?,
                "namespace" | "group" if scheme == Scheme::Nacos => {
                    nacos_name(key, value)?;
                    if key == "namespace" {
                        options.namespace = value.to_string();
                    } else {
                        options.group = value.to_string();
                    }
                }
                "grpc_port" if scheme == Scheme::Nacos => {
                    options.grpc_port =
                        Some(value.parse().map_err(|_| RegistryError::BadOption {
                            option: key.into(),
                            value: value.into(),
                            expected: "a port number, 1-65535",
                        })?)
                }
                other => match security::apply_query_option(scheme, &mut options, other, value) {
                    Some(applied) => applied?,
                    None => {
                        return Err(bad(format!(
                            "unknown option {other:?}; known: ttl, heartbeat, connect_timeout, \
                             request_timeout, {}{}",
                            if scheme == Scheme::Nacos {
                                "namespace, group, grpc_port"
                            } else {
                                "root"
                            },
                            security::options_of(scheme)
                        )))
                    }
                },
            }
        }
        if !heartbeat_set {
            options.heartbeat = options.ttl / 3;
        }
        if options.heartbeat >= options.ttl {
            return Err(RegistryError::BadOption {
                option: "heartbeat".into(),
                value: format!("{}", options.heartbeat.as_secs_f64()),
                expected: "seconds shorter than ttl",
            });
        }
        if !options.root.starts_with('/') {
            options.root = format!("/{}", options.root);
        }
        security::check_tls(options.tls.as_ref())?;
        Ok(RegistryUrl {
            scheme,
            endpoints,
            options,
            original: shown,
        })
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("endpoint {endpoint:?} has no port; expected host:port"))?;
    if host.is_empty() {
        return Err(format!(
            "endpoint {endpoint:?} has no host; expected host:port"
        ));
    }
    port.parse::<u16>()
        .map_err(|_| format!("endpoint {endpoint:?} has a bad port {port:?}; expected 1-65535"))?;
    Ok(())
}

fn seconds(option: &str, value: &str) -> Result<Duration, RegistryError> {
    let bad = || RegistryError::BadOption {
        option: option.to_string(),
        value: value.to_string(),
        expected: "a positive number of seconds, e.g. 2 or 0.5",
    };
    let secs: f64 = value.parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(crate) fn root(value: &str) -> Result<String, RegistryError> {
    let trimmed = value.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.contains("//") {
        return Err(RegistryError::BadOption {
            option: "root".into(),
            value: value.to_string(),
            expected: "a path such as /rpc",
        });
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints_root_and_options() {
        let url = RegistryUrl::parse("etcd://127.0.0.1:2379,127.0.0.1:2380/apps?ttl=2").unwrap();
        assert_eq!(url.scheme, Scheme::Etcd);
        assert_eq!(url.endpoints, vec!["127.0.0.1:2379", "127.0.0.1:2380"]);
        assert_eq!(url.options.root, "/apps");
        assert_eq!(url.options.ttl, Duration::from_secs(2));
        assert_eq!(url.options.heartbeat, Duration::from_secs(2) / 3);
        let zk = RegistryUrl::parse("zk://localhost:2181").unwrap();
        assert_eq!(zk.scheme, Scheme::Zookeeper);
        assert_eq!(zk.options.root, "/rpc");
    }

    #[test]
    fn bad_urls_name_what_is_wrong() {
        let cases = [
            ("127.0.0.1:2379", "scheme"),
            ("redis2://x:1", "unknown scheme"),
            ("redis://x:1/rpc", "database number"),
            ("redis://a:1,b:2", "one host:port"),
            ("redis://user@x:1", "user:password"),
            ("etcd://", "no host"),
            ("etcd://host", "no port"),
            ("etcd://host:99999", "bad port"),
            ("etcd://h:1?ttl=abc", "ttl"),
            ("etcd://h:1?ttl=0", "ttl"),
            ("etcd://h:1?tll=3", "unknown option"),
            ("etcd://h:1?ttl=3&heartbeat=5", "heartbeat"),
        ];
        for (url, needle) in cases {
            let err = RegistryUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
