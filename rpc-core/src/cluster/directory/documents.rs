//! Following one key's governance documents: each version is parsed and validated, and the
//! last good one of each kind stays in force. A version that fails is logged once (not at
//! every repeat of the same text) and changes nothing.

use futures::StreamExt;

use super::{Context, ServiceEntry};
use crate::cluster::governance::{GovernanceError, InForce, Overrides, Routes};
use crate::documents::{
    DocumentEvent, DocumentKind, DocumentStream, Documents, MAX_DOCUMENT_BYTES,
};
use crate::registry::{RegistryError, ServiceKey};

/// The last good version of each document, and the last refused text of each (so a bad
/// version is warned about once).
#[derive(Default)]
pub(super) struct Latest {
    overrides: Option<Overrides>,
    routes: Option<Routes>,
    refused: [Option<String>; 2],
}

impl Latest {
    /// Takes a snapshot of the documents; returns what is now in force if it changed.
    pub(super) fn update(
        &mut self,
        service: &ServiceKey,
        documents: &Documents,
    ) -> Option<InForce> {
        let overrides = self.next(
            service,
            documents,
            DocumentKind::Overrides,
            Overrides::parse,
        );
        let routes = self.next(service, documents, DocumentKind::Routes, Routes::parse);
        let overrides = overrides.unwrap_or_else(|| self.overrides.clone());
        let routes = routes.unwrap_or_else(|| self.routes.clone());
        if overrides == self.overrides && routes == self.routes {
            return None;
        }
        self.overrides = overrides.clone();
        self.routes = routes.clone();
        Some(InForce::new(overrides, routes))
    }

    /// The new good version of `kind` (`Some(None)`: deleted), or `None` to keep the last.
    fn next<T>(
        &mut self,
        service: &ServiceKey,
        documents: &Documents,
        kind: DocumentKind,
        parse: fn(&str) -> Result<T, GovernanceError>,
    ) -> Option<Option<T>> {
        let slot = kind as usize;
        let Some(text) = documents.get(kind) else {
            self.refused[slot] = None;
            return Some(None);
        };
        let parsed = if text.len() > MAX_DOCUMENT_BYTES {
            Err(GovernanceError::Parse(format!(
                "{} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit",
                text.len()
            )))
        } else {
            parse(text)
        };
        match parsed {
            Ok(document) => {
                self.refused[slot] = None;
                Some(Some(document))
            }
            Err(error) => {
                if self.refused[slot].as_deref() != Some(text) {
                    tracing::warn!(
                        service = %service,
                        document = kind.name(),
                        %error,
                        "governance document refused; the last good version stays in force"
                    );
                    self.refused[slot] = Some(text.to_string());
                }
                None
            }
        }
    }
}

/// Opens the documents' watch and waits for the first snapshot, within the discover
/// timeout. A backend without governance documents yields nothing, quietly.
pub(super) async fn first(
    ctx: &Context,
    key: &ServiceKey,
) -> (Latest, Option<InForce>, Option<DocumentStream>) {
    let mut latest = Latest::default();
    let timeout = ctx.config.discover_timeout;
    let mut stream = match tokio::time::timeout(timeout, ctx.registry.watch_documents(key)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(RegistryError::Unsupported { .. })) => return (latest, None, None),
        Ok(Err(error)) => {
            tracing::warn!(service = %key, %error, "cannot watch governance documents; retrying with backoff");
            return (latest, None, None);
        }
        Err(_) => return (latest, None, None),
    };
    match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(DocumentEvent::Snapshot(documents))) => {
            let in_force = latest.update(key, &documents);
            (latest, in_force, Some(stream))
        }
        _ => (latest, None, Some(stream)),
    }
}

/// Applies document snapshots to `entry` until the directory drops it, watching again with
/// backoff whenever the stream ends. Returns at once for a backend without documents. It holds
/// the entry weakly: only the directory's own references count when idle entries are swept.
pub(super) fn follow(
    ctx: std::sync::Arc<Context>,
    entry: &std::sync::Arc<ServiceEntry>,
    latest: Latest,
    stream: Option<DocumentStream>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let weak = std::sync::Arc::downgrade(entry);
    let stop = entry.stop().clone();
    let key = entry.key().clone();
    run(ctx, weak, stop, key, latest, stream)
}

async fn run(
    ctx: std::sync::Arc<Context>,
    entry: std::sync::Weak<ServiceEntry>,
    stop: tokio_util::sync::CancellationToken,
    key: ServiceKey,
    mut latest: Latest,
    mut stream: Option<DocumentStream>,
) {
    let mut attempt = 0u32;
    loop {
        let mut events = match stream.take() {
            Some(events) => events,
            None => {
                let delay = ctx.config.rewatch_backoff.delay(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                match ctx.registry.watch_documents(&key).await {
                    Ok(events) => events,
                    Err(RegistryError::Unsupported { .. }) => return,
                    Err(error) => {
                        tracing::debug!(service = %key, %error, attempt, "cannot watch governance documents yet");
                        continue;
                    }
                }
            }
        };
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                event = events.next() => event,
            };
            match event {
                Some(DocumentEvent::Snapshot(documents)) => {
                    attempt = 0;
                    if let Some(in_force) = latest.update(&key, &documents) {
                        let Some(entry) = entry.upgrade() else { return };
                        tracing::info!(service = %key, "governance documents changed; now in force");
                        entry.set_governance(in_force);
                    }
                }
                // The last documents stay in force while the registry is away.
                Some(DocumentEvent::Disconnected { .. }) => {}
                None => break,
            }
        }
    }
}
