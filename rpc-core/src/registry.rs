//! The registry seen from the framework: service keys, instances, and the [`Registry`] trait
//! that every backend (memory, etcd, ZooKeeper) implements.
//!
//! Layout contract (DESIGN.md): one node per instance at `<root>/<name>:<version>/<host>:<port>`,
//! whose value is the JSON form of [`ServiceInstance`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;

use crate::documents::{DocumentKind, DocumentStream};
use serde::{Deserialize, Serialize};

/// The weight an instance gets when its data names none.
pub const DEFAULT_WEIGHT: u32 = 100;

/// `<service-name>:<version>`, the unit consumers look up.
///
/// ```
/// use rpc_core::ServiceKey;
///
/// let key: ServiceKey = "example.Greeter:1.0.0".parse().unwrap();
/// assert_eq!((key.name(), key.version()), ("example.Greeter", "1.0.0"));
/// assert!("no-version".parse::<ServiceKey>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    name: String,
    version: String,
}

impl ServiceKey {
    /// A key from a service name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> ServiceKey {
        ServiceKey {
            name: name.into(),
            version: version.into(),
        }
    }

    /// The service name, e.g. `example.Greeter`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, e.g. `1.0.0`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.version)
    }
}

/// A string that is not `<name>:<version>`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad service key {0:?}: expected <service-name>:<version>, e.g. example.Greeter:1.0.0")]
pub struct BadServiceKey(pub String);

impl FromStr for ServiceKey {
    type Err = BadServiceKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once(':') {
            Some((name, version))
                if !name.is_empty() && !version.is_empty() && !s.contains('/') =>
            {
                Ok(ServiceKey::new(name, version))
            }
            _ => Err(BadServiceKey(s.to_string())),
        }
    }
}

/// One provider of one service version: the JSON value of its registry node.
///
/// ```
/// use rpc_core::{ServiceInstance, ServiceKey};
///
/// let key = ServiceKey::new("example.Greeter", "1.0.0");
/// let instance = ServiceInstance::new(&key, "127.0.0.1", 9101);
/// assert_eq!(instance.address(), "127.0.0.1:9101");
/// let json = instance.to_json();
/// assert_eq!(ServiceInstance::from_json(json.as_bytes()).unwrap(), instance);
/// // Fields other tools add are ignored; missing weight and metadata take defaults.
/// let hand_written = br#"{"service":"example.Greeter","version":"1.0.0","host":"10.0.0.7","port":80,"zone":"b"}"#;
/// assert_eq!(ServiceInstance::from_json(hand_written).unwrap().weight, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// Service name, e.g. `example.Greeter`.
    pub service: String,
    /// Service version, e.g. `1.0.0`.
    pub version: String,
    /// Host consumers connect to.
    pub host: String,
    /// Port consumers connect to.
    pub port: u16,
    /// Relative weight for weighted balancers.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free-form labels.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// When the provider registered, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub registered_at_ms: u64,
    /// How consumers reach the instance: `Some("tls")` for TLS, `None` (the field absent
    /// from the node) for plain TCP. Readers that ignore the field keep working with plain
    /// providers; consumers of this framework pick TLS per instance from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

/// The [`ServiceInstance::transport`] of a provider that serves TLS.
pub const TRANSPORT_TLS: &str = "tls";

fn default_weight() -> u32 {
    DEFAULT_WEIGHT
}

impl ServiceInstance {
    /// An instance with the default weight, no metadata, registered now.
    pub fn new(key: &ServiceKey, host: impl Into<String>, port: u16) -> ServiceInstance {
        ServiceInstance {
            service: key.name().to_string(),
            version: key.version().to_string(),
            host: host.into(),
            port,
            weight: DEFAULT_WEIGHT,
            metadata: BTreeMap::new(),
            registered_at_ms: now_ms(),
            transport: None,
        }
    }

    /// Whether the instance serves TLS (its node says `"transport": "tls"`).
    pub fn uses_tls(&self) -> bool {
        self.transport.as_deref() == Some(TRANSPORT_TLS)
    }

    /// The service key this instance provides.
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(self.service.clone(), self.version.clone())
    }

    /// `host:port`, the node name under the service key.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The layout JSON stored as the node's value.
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and a string map always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a node's value; unknown fields are ignored.
    pub fn from_json(value: &[u8]) -> Result<ServiceInstance, serde_json::Error> {
        serde_json::from_slice(value)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The full, current list of instances of the watched key.
    Snapshot(Vec<ServiceInstance>),
    /// The backend lost the registry; the last snapshot may be out of date until the next one.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
}

/// What [`Registry::watch`] returns: a boxed stream of [`WatchEvent`]s.
pub type WatchStream = BoxStream<'static, WatchEvent>;

/// A [`WatchStream`] fed by a channel: a backend's watch task sends events, the consumer
/// reads them; the stream ends when every sender is dropped. With it, a `Registry` written
/// outside this crate needs no stream library of its own.
pub fn watch_channel(capacity: usize) -> (tokio::sync::mpsc::Sender<WatchEvent>, WatchStream) {
    let (sender, receiver) = tokio::sync::mpsc::channel(capacity.max(1));
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    (sender, Box::pin(stream))
}

/// Why a registry operation failed: which registry, which key, and what went wrong.
///
/// New variants may be added, so matches need a `_` arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry could not be reached.
    #[error("{registry} at {endpoints}: unreachable: {message}")]
    Unavailable {
        /// The backend, e.g. `etcd`.
        registry: &'static str,
        /// The endpoints tried.
        endpoints: String,
        /// What the client said.
        message: String,
    },
    /// An operation on one key failed.
    #[error("{registry}: {op} {key} failed: {message}")]
    Operation {
        /// The backend.
        registry: &'static str,
        /// What was being done: `register`, `deregister`, `discover`, `watch`, ...
        op: &'static str,
        /// The registry key or service key involved.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// The node is held by another live registration (another provider claims the same
    /// published `host:port`); nothing was written.
    #[error("{registry}: {path} is already registered by another live provider ({owner}); give each provider its own published address (server.advertise)")]
    Taken {
        /// The backend.
        registry: &'static str,
        /// The node path.
        path: String,
        /// Who holds it: the lease or session, and what the node says.
        owner: String,
    },
    /// A registry URL that cannot be used.
    #[error("bad registry url {url:?}: {message}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// An option with a bad value.
    #[error("bad registry option {option}={value:?}: expected {expected}")]
    BadOption {
        /// The option's name, e.g. `ttl`.
        option: String,
        /// The value given.
        value: String,
        /// The form it must take.
        expected: &'static str,
    },
    /// A scheme this build does not support yet.
    #[error("{scheme}:// registry is not built yet")]
    NotBuilt {
        /// The URL scheme.
        scheme: String,
    },
    /// A scheme whose backend is behind a Cargo feature that this build left out.
    #[error("{scheme}:// needs the `{feature}` feature of {package} (features = [\"{feature}\"])")]
    FeatureDisabled {
        /// The URL scheme, e.g. `etcd`.
        scheme: String,
        /// The Cargo feature to enable, e.g. `etcd`.
        feature: &'static str,
        /// The crate that has the feature, e.g. `rpc-registry`.
        package: &'static str,
    },
    /// The backend does not implement this operation.
    #[error("{registry}: {op} is not supported by this registry")]
    Unsupported {
        /// The backend.
        registry: &'static str,
        /// The operation, e.g. `write_document`.
        op: &'static str,
    },
    /// The registry refused the credentials given (wrong user name or password, or none
    /// given to a registry that requires them). Never carries the password.
    #[error("{registry} at {endpoint} refused the credentials: {message}")]
    Refused {
        /// The backend.
        registry: &'static str,
        /// The endpoint that refused, `host:port`.
        endpoint: String,
        /// What the registry said.
        message: String,
    },
    /// The registry was shut down.
    #[error("{registry}: registry client is shut down")]
    Closed {
        /// The backend.
        registry: &'static str,
    },
}

/// A service registry: providers publish instances, consumers discover and watch them.
///
/// Implementations keep what this process registered alive (leases, sessions) and heal it
/// after registry outages. The trait is object safe: the framework holds `Arc<dyn Registry>`.
#[async_trait::async_trait]
pub trait Registry: Send + Sync + 'static {
    /// The backend's name for messages: `memory`, `etcd`, `zookeeper`.
    fn backend(&self) -> &'static str;

    /// Publishes an instance, replacing any earlier data at its node; it stays published
    /// (and is re-published after outages) until deregistered or shut down. A node that
    /// another live registration holds is never overwritten: that is
    /// [`RegistryError::Taken`], naming the path and the owner.
    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError>;

    /// Removes an instance this process registered.
    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError>;

    /// The current instances of one service key. Nodes whose value does not parse are skipped.
    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError>;

    /// A stream of full snapshots of one service key, the current one first. The stream
    /// survives registry outages: it reports [`WatchEvent::Disconnected`] and, once the
    /// registry is back, a fresh snapshot.
    async fn watch(&self, key: &ServiceKey) -> Result<WatchStream, RegistryError>;

    /// Every service key that has at least one node.
    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError>;

    /// Deregisters everything this process registered and closes the client.
    async fn shutdown(&self) -> Result<(), RegistryError>;

    /// The text of one governance document of `key`, or `None` if there is none.
    async fn read_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
    ) -> Result<Option<String>, RegistryError> {
        let _ = (key, kind);
        Err(self.unsupported("read_document"))
    }

    /// Stores (`Some`) or deletes (`None`) one governance document of `key`, persistently:
    /// it outlives this client. Callers validate the text first.
    async fn write_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
        text: Option<&str>,
    ) -> Result<(), RegistryError> {
        let _ = (key, kind, text);
        Err(self.unsupported("write_document"))
    }

    /// A stream of snapshots of `key`'s governance documents, the current one first, with
    /// the same outage behaviour as [`Registry::watch`].
    async fn watch_documents(&self, key: &ServiceKey) -> Result<DocumentStream, RegistryError> {
        let _ = key;
        Err(self.unsupported("watch_documents"))
    }

    /// The error for an operation this backend leaves out.
    fn unsupported(&self, op: &'static str) -> RegistryError {
        RegistryError::Unsupported {
            registry: self.backend(),
            op,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_json_round_trips_and_ignores_unknown_fields() {
        let json = br#"{"service":"example.Greeter","version":"1.0.0","host":"127.0.0.1","port":9101,"weight":100,"metadata":{"zone":"a"},"registered_at_ms":1732000000000,"extra":true}"#;
        let inst = ServiceInstance::from_json(json).unwrap();
        assert_eq!(inst.port, 9101);
        assert_eq!(inst.metadata["zone"], "a");
        let back: serde_json::Value = serde_json::from_str(&inst.to_json()).unwrap();
        for field in [
            "service",
            "version",
            "host",
            "port",
            "weight",
            "metadata",
            "registered_at_ms",
        ] {
            assert!(back.get(field).is_some(), "missing {field}");
        }
    }

    #[test]
    fn the_transport_field_is_written_only_for_tls_byte_for_byte() {
        let key = ServiceKey::new("example.Greeter", "1.0.0");
        let mut inst = ServiceInstance::new(&key, "127.0.0.1", 9101);
        inst.registered_at_ms = 1732000000000;
        let plain = r#"{"service":"example.Greeter","version":"1.0.0","host":"127.0.0.1","port":9101,"weight":100,"metadata":{},"registered_at_ms":1732000000000}"#;
        assert_eq!(inst.to_json(), plain);
        assert!(!inst.uses_tls());
        inst.transport = Some(TRANSPORT_TLS.to_string());
        let tls = r#"{"service":"example.Greeter","version":"1.0.0","host":"127.0.0.1","port":9101,"weight":100,"metadata":{},"registered_at_ms":1732000000000,"transport":"tls"}"#;
        assert_eq!(inst.to_json(), tls);
        let read = ServiceInstance::from_json(tls.as_bytes()).unwrap();
        assert!(read.uses_tls());
        // Nodes written before the field existed read as plain TCP.
        assert!(!ServiceInstance::from_json(plain.as_bytes())
            .unwrap()
            .uses_tls());
    }

    #[test]
    fn service_key_parses() {
        let key: ServiceKey = "example.Greeter:1.0.0".parse().unwrap();
        assert_eq!(key.name(), "example.Greeter");
        assert_eq!(key.to_string(), "example.Greeter:1.0.0");
        assert!("nocolon".parse::<ServiceKey>().is_err());
    }
}
