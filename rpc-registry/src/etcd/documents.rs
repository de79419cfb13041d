//! Governance documents on etcd: plain keys without a lease at
//! `<root>/_governance/<service-key>/{overrides,routes}`, and a watch task per
//! `watch_documents` call that follows their prefix the way [`super::watch`] follows a
//! service's nodes (a get, then a watch from its revision + 1; resync with backoff).

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use futures::stream::{self, StreamExt};
use rpc_core::backoff::Retries;
use rpc_core::documents::{DocumentEvent, DocumentKind, DocumentStream, Documents};
use rpc_core::registry::ServiceKey;
use tokio::sync::{mpsc, watch};

use super::endpoints::Endpoints;
use super::error::{Failure, BACKEND};
use super::lease::{sleep_or_stop, stopped};
use crate::documents::text_of;

/// Snapshots buffered for a slow reader before the task waits for it.
const BUFFER: usize = 16;

/// Where one service key's documents live.
#[derive(Debug, Clone)]
pub(crate) struct DocumentKeys {
    root: String,
    key: String,
}

impl DocumentKeys {
    pub(crate) fn new(root: &str, key: &ServiceKey) -> DocumentKeys {
        DocumentKeys {
            root: root.to_string(),
            key: key.to_string(),
        }
    }

    pub(crate) fn path(&self, kind: DocumentKind) -> String {
        kind.path(&self.root, &self.key)
    }

    /// The common prefix of both paths (the folder, with its trailing `/`).
    fn prefix(&self) -> String {
        let path = self.path(DocumentKind::Overrides);
        path.trim_end_matches(DocumentKind::Overrides.name())
            .to_string()
    }

    /// Which document a key is, if it is one of the two.
    fn kind_of(&self, kv: &KeyValue) -> Option<DocumentKind> {
        let path = String::from_utf8_lossy(kv.key());
        DocumentKind::ALL
            .into_iter()
            .find(|kind| self.path(*kind) == path)
    }

    fn text(&self, kind: DocumentKind, kv: &KeyValue) -> Option<String> {
        text_of(BACKEND, &self.path(kind), kv.value())
    }
}

/// Both documents and the revision they were read at.
pub(crate) async fn read(
    endpoints: &Endpoints,
    keys: &DocumentKeys,
    persist: bool,
) -> Result<(Documents, i64), Failure> {
    let request = |mut client: etcd_client::Client| {
        let prefix = keys.prefix();
        async move {
            client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await
        }
    };
    let response = if persist {
        endpoints.call(request).await?
    } else {
        endpoints
            .call_once(endpoints.request_timeout(), request)
            .await?
    };
    let mut documents = Documents::default();
    for kv in response.kvs() {
        if let Some(kind) = keys.kind_of(kv) {
            documents.set(kind, keys.text(kind, kv));
        }
    }
    Ok((documents, response.header().map_or(0, |h| h.revision())))
}

/// Lists the documents now (an error here is the caller's), then follows them in a
/// background task until the stream is dropped or the registry stops.
pub(crate) async fn start(
    endpoints: std::sync::Arc<Endpoints>,
    keys: DocumentKeys,
    backoff: Retries,
    stop: watch::Receiver<bool>,
) -> Result<DocumentStream, Failure> {
    let (documents, revision) = read(&endpoints, &keys, true).await?;
    let (events, receiver) = mpsc::channel(BUFFER);
    // The channel is new and empty, so the first snapshot always fits.
    let _ = events.try_send(DocumentEvent::Snapshot(documents.clone()));
    let follower = Follower {
        endpoints,
        keys,
        events,
        stop,
        backoff,
    };
    tokio::spawn(follower.run(documents, revision));
    Ok(stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
    .boxed())
}

struct Follower {
    endpoints: std::sync::Arc<Endpoints>,
    keys: DocumentKeys,
    events: mpsc::Sender<DocumentEvent>,
    stop: watch::Receiver<bool>,
    backoff: Retries,
}

impl Follower {
    async fn run(mut self, mut documents: Documents, mut revision: i64) {
        loop {
            let Some(reason) = self.follow(&mut documents, revision).await else {
                return;
            };
            tracing::debug!(prefix = %self.keys.prefix(), "etcd document watch interrupted: {reason}");
            if !self.send(DocumentEvent::Disconnected { reason }).await {
                return;
            }
            loop {
                if sleep_or_stop(self.backoff.next_delay(), &mut self.stop).await
                    || self.events.is_closed()
                {
                    return;
                }
                if let Ok((fresh, at)) = read(&self.endpoints, &self.keys, false).await {
                    (documents, revision) = (fresh, at);
                    break;
                }
            }
            if !self.send(DocumentEvent::Snapshot(documents.clone())).await {
                return;
            }
        }
    }

    /// One watch session from `revision` + 1; `None` to stop, `Some(reason)` to resync.
    async fn follow(&mut self, documents: &mut Documents, revision: i64) -> Option<String> {
        let opened = self
            .endpoints
            .call_once(self.endpoints.request_timeout(), |mut client| {
                let prefix = self.keys.prefix();
                async move {
                    let options = WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1);
                    client.watch(prefix, Some(options)).await
                }
            })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(failure) => return Some(format!("cannot start the watch: {failure}")),
        };
        loop {
            let message = tokio::select! {
                _ = self.stop.changed() => {
                    if stopped(&self.stop) {
                        return None;
                    }
                    continue;
                }
                _ = self.events.closed() => return None,
                message = stream.next() => message,
            };
            let response = match message {
                Some(Ok(response)) => response,
                Some(Err(e)) => return Some(format!("watch stream failed: {e}")),
                None => return Some("watch stream closed".into()),
            };
            if response.canceled() || response.compact_revision() > 0 {
                return Some(format!(
                    "etcd canceled the watch: {}",
                    response.cancel_reason()
                ));
            }
            self.backoff.reset();
            let before = documents.clone();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(kind) = self.keys.kind_of(kv) else {
                    continue;
                };
                let text = match event.event_type() {
                    EventType::Put => self.keys.text(kind, kv),
                    EventType::Delete => None,
                };
                documents.set(kind, text);
            }
            if *documents != before && !self.send(DocumentEvent::Snapshot(documents.clone())).await
            {
                return None;
            }
        }
    }

    /// Delivers one event; false when the reader is gone or the registry stopped.
    async fn send(&mut self, event: DocumentEvent) -> bool {
        tokio::select! {
            sent = self.events.send(event) => sent.is_ok(),
            _ = self.stop.changed() => false,
        }
    }
}
