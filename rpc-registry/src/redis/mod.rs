//! The Redis backend: `redis://[user:password@]host:port[/db][?ttl=…&heartbeat=…&root=…]`.
//!
//! - Each registered instance is one **string key** `<root>/<service-key>/<host>:<port>`
//!   holding the layout JSON, written with `SET ... PX <ttl>`: Redis itself deletes it when
//!   its provider stops renewing, with no client sweeping. `redis-cli --scan --pattern
//!   '/rpc/*'` lists the layout and `redis-cli GET <key>` shows a node.
//! - The keeper ([`keeper`]) renews every key each heartbeat with one script per key
//!   (`PEXPIRE` if the value is ours, else `SET` it back), which also heals a key deleted by
//!   hand, a `FLUSHALL` and a Redis restart within one heartbeat.
//! - Watches ([`watch`]) follow keyspace notifications and resync every heartbeat.
//! - One server: no Sentinel or Cluster (see docs/redis-registry.md).

mod connection;
mod keeper;
mod listing;
mod notifications;
mod shared;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use rpc_core::backoff::Backoff;
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchStream};
use tracing::info;

use self::connection::{Connection, Failure, REGISTRY};
use self::shared::Shared;
use crate::layout;
use crate::options::RegistryUrl;

/// Retry delays for watches that subscribe or list again after a failure: 100 ms doubling
/// up to 3 s, with jitter.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(3));

/// A [`Registry`] kept in one Redis server (6.2 or later; Debian's Redis 7 is tested).
///
/// Dropping it (or calling [`Registry::shutdown`]) stops the renewals, so its keys expire
/// within the TTL; `shutdown` also deletes them first, explicitly.
pub struct RedisRegistry {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRegistry")
            .field("endpoint", &self.shared.connection.endpoint)
            .field("db", &self.shared.options.db)
            .field("root", &self.shared.options.root)
            .finish_non_exhaustive()
    }
}

impl RedisRegistry {
    /// Connects to the server the URL names (checked with a `PING`) and starts the keeper.
    ///
    /// Fails with [`RegistryError::Unavailable`] when the server does not answer within the
    /// connect timeout, and with [`RegistryError::Operation`] when it refuses (a wrong
    /// password, say).
    pub async fn connect(url: RegistryUrl) -> Result<RedisRegistry, RegistryError> {
        let connection = Connection::new(&url)?;
        let endpoint = connection.endpoint.clone();
        connection
            .query::<String>(&redis::cmd("PING"))
            .await
            .map_err(|e| e.into_error(&endpoint, "connect", &endpoint))?;
        info!(registry = REGISTRY, %endpoint, db = url.options.db, "connected");
        let shared = Arc::new(Shared::new(connection, url.options));
        keeper::spawn_keeper(shared.clone());
        Ok(RedisRegistry { shared })
    }

    fn error(&self, op: &'static str, key: &str, failure: Failure) -> RegistryError {
        failure.into_error(&self.shared.connection.endpoint, op, key)
    }
}

impl Drop for RedisRegistry {
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[async_trait::async_trait]
impl Registry for RedisRegistry {
    fn backend(&self) -> &'static str {
        REGISTRY
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.shared.check_open()?;
        let key = layout::node_path(&self.shared.options.root, instance);
        let mut registered = self.shared.registered.lock().await;
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(instance.to_json())
            .arg("PX")
            .arg(self.shared.ttl_ms());
        self.shared
            .connection
            .query::<()>(&set)
            .await
            .map_err(|e| self.error("register", &key, e))?;
        registered.insert(key, instance.clone());
        Ok(())
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.shared.check_open()?;
        let key = layout::node_path(&self.shared.options.root, instance);
        let mut registered = self.shared.registered.lock().await;
        registered.remove(&key);
        let mut del = redis::cmd("DEL");
        del.arg(&key);
        self.shared
            .connection
            .query::<()>(&del)
            .await
            .map_err(|e| self.error("deregister", &key, e))
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.shared.check_open()?;
        let root = &self.shared.options.root;
        listing::list_instances(&self.shared.connection, root, key, &self.shared.warn_once)
            .await
            .map_err(|e| self.error("discover", &layout::service_prefix(root, key), e))
    }

    async fn watch(&self, key: &ServiceKey) -> Result<WatchStream, RegistryError> {
        watch::watch(self.shared.clone(), key.clone()).await
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.shared.check_open()?;
        let root = &self.shared.options.root;
        listing::list_services(&self.shared.connection, root)
            .await
            .map_err(|e| self.error("services", &layout::root_prefix(root), e))
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        let mut registered = self.shared.registered.lock().await;
        self.shared.close();
        let keys: Vec<String> = std::mem::take(&mut *registered).into_keys().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut del = redis::cmd("DEL");
        del.arg(&keys);
        let deleted = self.shared.connection.query::<()>(&del).await;
        info!(
            registry = REGISTRY,
            keys = keys.len(),
            "shut down; deleted this process's keys"
        );
        deleted.map_err(|e| self.error("shutdown", &keys.join(","), e))
    }
}
