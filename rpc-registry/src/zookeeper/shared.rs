//! State shared by the registry handle, its session keeper and its watch tasks: the current
//! session, what this process registered, and how to open a new session.

use std::collections::{BTreeMap, HashSet};

use rpc_core::registry::{RegistryError, ServiceInstance};
use tokio::sync::watch;
use zookeeper_client as zk;

use super::error::{within, REGISTRY};
use super::paths::Layout;
use crate::layout::WarnOnce;
use crate::options::RegistryOptions;

/// One registry client's state.
pub(crate) struct Shared {
    /// `host:port,host:port`, as zookeeper-client takes it.
    pub(crate) endpoints: String,
    /// Options from the URL.
    pub(crate) options: RegistryOptions,
    /// Paths of the layout.
    pub(crate) layout: Layout,
    /// The current session, `None` once shut down. A new session replaces the old one here;
    /// watch tasks follow this channel to move to it. Dropping the last clone of a client
    /// closes its session.
    session: watch::Sender<Option<zk::Client>>,
    /// Node path -> instance, for every instance this process registered and has not
    /// deregistered. The lock also orders node writes against each other.
    pub(crate) registered: tokio::sync::Mutex<BTreeMap<String, ServiceInstance>>,
    /// Bad nodes already warned about, by path and modification zxid.
    pub(crate) warn_once: WarnOnce,
    /// Every session this client opened: a node one of them still owns is ours to replace.
    sessions: std::sync::Mutex<HashSet<i64>>,
}

impl Shared {
    /// State around a freshly opened session.
    pub(crate) fn new(endpoints: String, options: RegistryOptions, client: zk::Client) -> Shared {
        let layout = Layout::new(&options.root);
        Shared {
            endpoints,
            options,
            layout,
            sessions: std::sync::Mutex::new(HashSet::from([client.session_id().0])),
            session: watch::Sender::new(Some(client)),
            registered: tokio::sync::Mutex::new(BTreeMap::new()),
            warn_once: WarnOnce::default(),
        }
    }

    /// Whether `session` is one this client opened.
    pub(crate) fn is_ours(&self, session: i64) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&session)
    }

    /// Stops keeping `path` if it is still registered as `instance`.
    pub(crate) async fn forget_if(&self, path: &str, instance: &ServiceInstance) {
        let mut registered = self.registered.lock().await;
        if registered.get(path) == Some(instance) {
            registered.remove(path);
        }
    }

    /// The current session's client, or [`RegistryError::Closed`] after shutdown.
    pub(crate) fn client(&self) -> Result<zk::Client, RegistryError> {
        self.session
            .borrow()
            .clone()
            .ok_or(RegistryError::Closed { registry: REGISTRY })
    }

    /// Follows session changes: a new client after expiry, `None` after shutdown.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<zk::Client>> {
        self.session.subscribe()
    }

    /// Makes `client` the current session, unless the registry was shut down meanwhile.
    /// Returns whether it was installed.
    pub(crate) fn replace_client(&self, client: zk::Client) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.session_id().0);
        let mut client = Some(client);
        self.session.send_if_modified(|current| {
            if current.is_none() {
                return false;
            }
            *current = client.take();
            true
        })
    }

    /// Drops the current session and tells every task to stop.
    pub(crate) fn close(&self) {
        self.session.send_replace(None);
    }

    /// Whether [`Shared::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.session.borrow().is_none()
    }

    /// Resolves once the registry is shut down.
    pub(crate) async fn closed(&self) {
        let mut rx = self.session.subscribe();
        // An error means the sender is gone, which is as closed as it gets.
        let _ = rx.wait_for(Option::is_none).await;
    }

    /// Opens one new session with the configured session timeout, bounded by the connect
    /// timeout. Fails fast when no server accepts a connection.
    pub(crate) async fn open_session(&self) -> Result<zk::Client, zk::Error> {
        open_session(&self.endpoints, &self.options).await
    }
}

/// Opens a session: session timeout = `ttl`; fails after `connect_timeout`.
pub(crate) async fn open_session(
    endpoints: &str,
    options: &RegistryOptions,
) -> Result<zk::Client, zk::Error> {
    let mut connector = zk::Client::connector()
        .with_session_timeout(options.ttl)
        .with_fail_eagerly();
    // Checked at connect; every session, a replacement included, authenticates the same.
    if let Ok(Some(digest)) = super::acl::digest(options) {
        connector = connector.with_auth("digest", &digest);
    }
    within(options.connect_timeout, connector.connect(endpoints)).await
}
