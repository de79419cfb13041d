//! The ZooKeeper backend: `zookeeper://host:port[,host:port...][/root]` (alias `zk://`).
//!
//! - One session per registry client; its timeout is the `ttl` option. Each registered
//!   instance is an **ephemeral** node `<root>/<service-key>/<host>:<port>` holding the layout
//!   JSON, under persistent parents. A process that dies takes its nodes with it once its
//!   session times out.
//! - The session keeper ([`session`]) opens a new session when one expires and re-creates
//!   every node, and puts back nodes deleted by hand within one heartbeat.
//! - Watches ([`watch`]) use a persistent recursive watch and deliver full snapshots.
//! - With several servers in the URL, zookeeper-client moves to another one when the one in
//!   use dies.

mod acl;
mod documents;
mod error;
mod nodes;
mod paths;
mod read;
mod session;
mod shared;
mod slot;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use rpc_core::backoff::Backoff;
use rpc_core::documents::{DocumentKind, DocumentStream};
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent};
use tracing::info;
use zookeeper_client as zk;

use self::acl::NodeAcls;
use self::error::{op_error, request_error, within, REGISTRY};
use self::nodes::{delete_node, ensure_node, Ensured};
use self::shared::{open_session, Shared};
use crate::options::RegistryUrl;

/// Attempts to delete a node whose create had an unknown outcome.
const UNDO_ATTEMPTS: usize = 20;

/// Retry delays for watches that list or watch again after a failure: 100 ms doubling up to
/// 3 s, each drawn from the upper half of its step (jitter 0.5).
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(3));

/// A [`Registry`] kept in ZooKeeper (3.6 or later, for persistent recursive watches).
///
/// Dropping it (or calling [`Registry::shutdown`]) closes its session, so its ephemeral
/// nodes disappear; `shutdown` also deletes them first, explicitly.
pub struct ZookeeperRegistry {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ZookeeperRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZookeeperRegistry")
            .field("endpoints", &self.shared.endpoints)
            .field("root", &self.shared.layout.root())
            .finish_non_exhaustive()
    }
}

impl ZookeeperRegistry {
    /// Opens a session to the servers the URL names, with the session timeout set to its
    /// `ttl` (default 30 s), and starts the session keeper.
    ///
    /// Fails with [`RegistryError::Unavailable`] when no server answers within the connect
    /// timeout.
    pub async fn connect(url: RegistryUrl) -> Result<ZookeeperRegistry, RegistryError> {
        let endpoints = url.endpoints.join(",");
        acl::digest(&url.options)?;
        let client = open_session(&endpoints, &url.options).await.map_err(|e| {
            RegistryError::Unavailable {
                registry: REGISTRY,
                endpoints: endpoints.clone(),
                message: format!("cannot open a session: {e}"),
            }
        })?;
        info!(
            registry = REGISTRY,
            %endpoints,
            session = %client.session_id(),
            timeout_ms = client.session_timeout().as_millis() as u64,
            "opened session"
        );
        if client.session_timeout() > url.options.ttl {
            // The server clamps session timeouts to 2 to 20 ticks.
            tracing::warn!(
                registry = REGISTRY,
                asked_ms = url.options.ttl.as_millis() as u64,
                granted_ms = client.session_timeout().as_millis() as u64,
                "ttl below the server's minimum session timeout (2 ticks); the server raised it"
            );
        }
        let shared = Arc::new(Shared::new(endpoints, url.options, client));
        session::spawn_keeper(shared.clone());
        Ok(ZookeeperRegistry { shared })
    }

    /// The current session's id, as ZooKeeper shows it in `ephemeralOwner`.
    pub fn session_id(&self) -> Result<i64, RegistryError> {
        Ok(self.shared.client()?.session_id().0)
    }

    /// The session timeout the server granted (the `ttl` option, clamped by the server to
    /// between 2 and 20 ticks).
    pub fn session_timeout(&self) -> Result<std::time::Duration, RegistryError> {
        Ok(self.shared.client()?.session_timeout())
    }

    fn unavailable(&self, op: &'static str, key: &str, e: &zk::Error) -> RegistryError {
        request_error(op, key, &self.shared.endpoints, e)
    }
}

/// The error for a node another client's live session owns: names the path and the owner.
fn taken_error(path: &str, owner: i64, data: &[u8]) -> RegistryError {
    let mut owner = format!("session {}", zk::SessionId(owner));
    if let Ok(instance) = ServiceInstance::from_json(data) {
        owner.push_str(&format!(", registered at {} ms", instance.registered_at_ms));
    }
    RegistryError::Taken {
        registry: REGISTRY,
        path: path.to_string(),
        owner,
    }
}

/// Deletes a node whose create had no answer, unless it is registered again meanwhile.
async fn undo_unknown(shared: Arc<Shared>, client: zk::Client, path: String) {
    let mut backoff = RETRY.retries();
    for _ in 0..UNDO_ATTEMPTS {
        if shared.registered.lock().await.contains_key(&path) {
            return;
        }
        match delete_node(&client, &path, shared.options.request_timeout).await {
            Ok(()) => return,
            Err(zk::Error::SessionExpired | zk::Error::ClientClosed) => return,
            Err(_) => backoff.wait().await,
        }
    }
}

impl Drop for ZookeeperRegistry {
    fn drop(&mut self) {
        self.shared.close();
    }
}

#[async_trait::async_trait]
impl Registry for ZookeeperRegistry {
    fn backend(&self) -> &'static str {
        REGISTRY
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        let path = self.shared.layout.node_path(instance);
        paths::check_instance(instance).map_err(|m| op_error("register", &path, m))?;
        let client = self.shared.client()?;
        // Kept first, so the guard puts it back from the first event on; the lock is not
        // held across the request, so many registrations are in flight at once.
        self.shared
            .registered
            .lock()
            .await
            .insert(path.clone(), instance.clone());
        let data = instance.to_json();
        let limit = self.shared.options.request_timeout;
        let ours = |owner| self.shared.is_ours(owner);
        let acls = NodeAcls::of(&self.shared.options);
        match ensure_node(&client, &path, data.as_bytes(), limit, acls, &ours).await {
            Ok(Ensured::Taken { owner, data }) => {
                self.shared.forget_if(&path, instance).await;
                Err(taken_error(&path, owner, &data))
            }
            Ok(_) => {
                if self.shared.registered.lock().await.get(&path) != Some(instance) {
                    // Deregistered while it was being created.
                    let _ = delete_node(&client, &path, limit).await;
                }
                Ok(())
            }
            Err(e) => {
                self.shared.forget_if(&path, instance).await;
                if error::is_unavailable(&e) {
                    // The create may have gone through: do not leave it behind, forgotten.
                    tokio::spawn(undo_unknown(self.shared.clone(), client, path.clone()));
                }
                Err(self.unavailable("register", &path, &e))
            }
        }
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        let path = self.shared.layout.node_path(instance);
        let client = self.shared.client()?;
        self.shared.registered.lock().await.remove(&path);
        delete_node(&client, &path, self.shared.options.request_timeout)
            .await
            .map_err(|e| self.unavailable("deregister", &path, &e))
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        let client = self.shared.client()?;
        read::list_instances(&self.shared, &client, key)
            .await
            .map_err(|e| self.unavailable("discover", &self.shared.layout.key_path(key), &e))
    }

    async fn watch(
        &self,
        key: &ServiceKey,
    ) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
        watch::watch(self.shared.clone(), key.clone()).await
    }

    async fn read_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
    ) -> Result<Option<String>, RegistryError> {
        let client = self.shared.client()?;
        documents::read(&self.shared, &client, key, kind)
            .await
            .map_err(|e| {
                self.unavailable(
                    "read_document",
                    &documents::path(&self.shared, key, kind),
                    &e,
                )
            })
    }

    async fn write_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
        text: Option<&str>,
    ) -> Result<(), RegistryError> {
        let path = documents::path(&self.shared, key, kind);
        if let Some(text) = text {
            crate::documents::check_size(REGISTRY, &path, text)?;
        }
        let client = self.shared.client()?;
        documents::write(&self.shared, &client, key, kind, text)
            .await
            .map_err(|e| self.unavailable("write_document", &path, &e))
    }

    async fn watch_documents(&self, key: &ServiceKey) -> Result<DocumentStream, RegistryError> {
        documents::watch(self.shared.clone(), key.clone()).await
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        let client = self.shared.client()?;
        let root = self.shared.layout.root();
        let limit = self.shared.options.request_timeout;
        let children = match within(limit, client.list_children(root)).await {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(self.unavailable("services", root, &e)),
        };
        let mut keys = Vec::new();
        for child in children {
            let Ok(key) = child.parse::<ServiceKey>() else {
                continue;
            };
            let path = format!("{root}/{child}");
            match within(limit, client.check_stat(&path)).await {
                Ok(Some(stat)) if stat.num_children > 0 => keys.push(key),
                Ok(_) => {}
                Err(e) => return Err(self.unavailable("services", &path, &e)),
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        let mut registered = self.shared.registered.lock().await;
        let Ok(client) = self.shared.client() else {
            return Ok(());
        };
        let limit = self.shared.options.request_timeout;
        let mut first_error = None;
        for path in registered.keys() {
            if let Err(e) = delete_node(&client, path, limit).await {
                first_error.get_or_insert_with(|| self.unavailable("shutdown", path, &e));
            }
        }
        registered.clear();
        self.shared.close();
        info!(
            registry = REGISTRY,
            session = %client.session_id(),
            "shut down; closing the session",
        );
        drop(client);
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_100ms_to_3s_with_jitter() {
        let mut retries = RETRY.retries();
        let first = retries.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let delays: Vec<Duration> = (0..10).map(|_| retries.next_delay()).collect();
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(3)),
            "{delays:?}"
        );
        assert!(delays[9] >= Duration::from_millis(1_500), "{delays:?}");
        retries.reset();
        assert!(retries.next_delay() <= Duration::from_millis(100));
    }
}
