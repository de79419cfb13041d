//! Governance documents on ZooKeeper: persistent nodes at
//! `<root>/_governance/<service-key>/{overrides,routes}`, and a follower per
//! `watch_documents` call on a persistent recursive watch of that folder (a watch may be
//! added before the folder exists). Every event, reconnect or new session reads both again.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use rpc_core::documents::{DocumentEvent, DocumentKind, DocumentStream, Documents};
use rpc_core::registry::{RegistryError, ServiceKey};
use tokio::sync::mpsc;
use tracing::debug;
use zookeeper_client as zk;

use super::acl::NodeAcls;
use super::error::{request_error, within, REGISTRY};
use super::paths::parent;
use super::shared::Shared;
use super::RETRY;
use crate::documents::text_of;

/// Snapshots buffered for a slow reader before the task waits for it.
const BUFFER: usize = 16;

/// The path of one document of `key`.
pub(crate) fn path(shared: &Shared, key: &ServiceKey, kind: DocumentKind) -> String {
    kind.path(shared.layout.root(), &key.to_string())
}

/// One document's text, or `None` if it is missing (or unusable, with a warning).
pub(crate) async fn read(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
    kind: DocumentKind,
) -> Result<Option<String>, zk::Error> {
    let path = path(shared, key, kind);
    match within(shared.options.request_timeout, client.get_data(&path)).await {
        Ok((data, _)) => Ok(text_of(REGISTRY, &path, &data)),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn read_both(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
) -> Result<Documents, zk::Error> {
    Ok(Documents {
        overrides: read(shared, client, key, DocumentKind::Overrides).await?,
        routes: read(shared, client, key, DocumentKind::Routes).await?,
    })
}

/// Stores (`Some`) or deletes (`None`) one document.
pub(crate) async fn write(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
    kind: DocumentKind,
    text: Option<&str>,
) -> Result<(), zk::Error> {
    let path = path(shared, key, kind);
    let limit = shared.options.request_timeout;
    let acls = NodeAcls::of(&shared.options);
    let Some(text) = text else {
        return match within(limit, client.delete(&path, None)).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(e),
        };
    };
    for _ in 0..3 {
        match within(limit, client.set_data(&path, text.as_bytes(), None)).await {
            Ok(_) => return Ok(()),
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
        match within(
            limit,
            client.create(&path, text.as_bytes(), &acls.persistent()),
        )
        .await
        {
            Ok(_) => return Ok(()),
            Err(zk::Error::NodeExists) => continue,
            Err(zk::Error::NoNode) => {
                match within(limit, client.mkdir(parent(&path), &acls.persistent())).await {
                    Ok(()) | Err(zk::Error::NodeExists) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(zk::Error::UnexpectedError(format!(
        "node {path} kept changing under us"
    )))
}

/// Reads the documents now (an error here is the caller's), then follows them.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    key: ServiceKey,
) -> Result<DocumentStream, RegistryError> {
    let client = shared.client()?;
    let folder = parent(&path(&shared, &key, DocumentKind::Routes)).to_string();
    let (watcher, documents) = start(&shared, &client, &key, &folder)
        .await
        .map_err(|e| request_error("watch_documents", &folder, &shared.endpoints, &e))?;
    let (events, receiver) = mpsc::channel(BUFFER);
    // The channel is new and empty, so the first snapshot always fits.
    let _ = events.try_send(DocumentEvent::Snapshot(documents.clone()));
    let follower = Follower {
        shared,
        key,
        folder,
        events,
        last: Some(documents),
    };
    tokio::spawn(follower.run(client, watcher));
    Ok(stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
    .boxed())
}

/// Adds the watch, then reads: no change can fall between the two.
async fn start(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
    folder: &str,
) -> Result<(zk::PersistentWatcher, Documents), zk::Error> {
    let mode = zk::AddWatchMode::PersistentRecursive;
    let watcher = within(shared.options.request_timeout, client.watch(folder, mode)).await?;
    Ok((watcher, read_both(shared, client, key).await?))
}

struct Follower {
    shared: Arc<Shared>,
    key: ServiceKey,
    folder: String,
    events: mpsc::Sender<DocumentEvent>,
    /// The last snapshot sent; `None` after a `Disconnected`, so the next one always goes out.
    last: Option<Documents>,
}

impl Follower {
    async fn run(mut self, mut client: zk::Client, mut watcher: zk::PersistentWatcher) {
        let mut sessions = self.shared.subscribe();
        let mut backoff = RETRY.retries();
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mut reread = false;
            let mut rewatch = false;
            tokio::select! {
                _ = self.events.closed() => return,
                changed = sessions.changed() => {
                    if changed.is_err() || self.shared.is_closed() {
                        return;
                    }
                    let current = sessions.borrow_and_update().clone();
                    if let Some(current) = current.filter(|c| c.session_id() != client.session_id()) {
                        client = current;
                        rewatch = true;
                    }
                }
                event = watcher.changed() => {
                    if event.event_type == zk::EventType::Session {
                        match event.session_state {
                            zk::SessionState::Disconnected => {
                                self.disconnected("lost the connection to zookeeper").await;
                            }
                            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => rewatch = true,
                            // The session ended: wait for the keeper's next one.
                            state => self.disconnected(&format!("zookeeper session ended: {state:?}")).await,
                        }
                    } else {
                        reread = true;
                    }
                }
                _ = retry => rewatch = true,
            }
            if rewatch {
                match start(&self.shared, &client, &self.key, &self.folder).await {
                    Ok((fresh, documents)) => {
                        watcher = fresh;
                        retry_at = None;
                        backoff.reset();
                        self.deliver(documents).await;
                    }
                    Err(error) => {
                        debug!(registry = REGISTRY, folder = %self.folder, %error, "document watch: re-watch failed; retrying");
                        retry_at = Some(
                            tokio::time::Instant::now()
                                + backoff.next_delay().min(Duration::from_secs(3)),
                        );
                    }
                }
            } else if reread {
                match read_both(&self.shared, &client, &self.key).await {
                    Ok(documents) => self.deliver(documents).await,
                    Err(_) => retry_at = Some(tokio::time::Instant::now() + backoff.next_delay()),
                }
            }
        }
    }

    async fn deliver(&mut self, documents: Documents) {
        if self.last.as_ref() == Some(&documents) {
            return;
        }
        self.last = Some(documents.clone());
        let _ = self.events.send(DocumentEvent::Snapshot(documents)).await;
    }

    async fn disconnected(&mut self, reason: &str) {
        if self.last.take().is_some() {
            let reason = reason.to_string();
            let _ = self
                .events
                .send(DocumentEvent::Disconnected { reason })
                .await;
        }
    }
}
