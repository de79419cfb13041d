//! Following one key's watch: swap in snapshots, mark staleness, re-watch with backoff.

use std::collections::HashSet;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;

use super::{build_members, Context, ServiceEntry};
use crate::registry::{RegistryError, ServiceInstance, ServiceKey, WatchEvent};

type Events = BoxStream<'static, WatchEvent>;

/// Opens a watch and waits for its first snapshot, within the discover timeout. On failure,
/// returns the error and, if the watch itself opened, its stream (which will report the
/// registry's return).
pub(super) async fn first_snapshot(
    ctx: &Context,
    key: &ServiceKey,
) -> Result<(Vec<ServiceInstance>, Events), (RegistryError, Option<Events>)> {
    let backend = ctx.registry.backend();
    let unavailable = |message: String| RegistryError::Operation {
        registry: backend,
        op: "watch",
        key: key.to_string(),
        message,
    };
    let timeout = ctx.config.discover_timeout;
    let mut stream = match tokio::time::timeout(timeout, ctx.registry.watch(key)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err((error, None)),
        Err(_) => return Err((unavailable(format!("no answer within {timeout:?}")), None)),
    };
    match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(WatchEvent::Snapshot(list))) => Ok((list, stream)),
        Ok(Some(WatchEvent::Disconnected { reason })) => Err((unavailable(reason), Some(stream))),
        Ok(None) => Err((unavailable("the watch ended at once".to_string()), None)),
        Err(_) => Err((
            unavailable(format!("no snapshot within {timeout:?}")),
            Some(stream),
        )),
    }
}

/// Applies `entry`'s watch events until the directory is dropped, re-watching whenever the
/// stream ends (or was never opened).
pub(super) async fn follow(
    ctx: Arc<Context>,
    entry: Arc<ServiceEntry>,
    mut stream: Option<Events>,
    mut warned: HashSet<String>,
) {
    let name = entry.key().to_string();
    let mut unresolved = Retry::after_list(&ctx, &entry);
    loop {
        let mut events = match stream.take() {
            Some(events) => events,
            None => match rewatch(&ctx, &entry).await {
                Some(events) => events,
                None => return,
            },
        };
        loop {
            let event = tokio::select! {
                _ = entry.stop().cancelled() => return,
                _ = unresolved.due() => {
                    resolve_again(&ctx, &entry, &name, &mut warned).await;
                    unresolved.next(&ctx, &entry);
                    continue;
                }
                event = events.next() => event,
            };
            match event {
                Some(WatchEvent::Snapshot(list)) => {
                    if entry.is_stale() {
                        crate::cluster::metrics::watch_resynced(&name);
                    }
                    apply(&ctx, &entry, &name, list, &mut warned).await;
                    unresolved = Retry::after_list(&ctx, &entry);
                }
                Some(WatchEvent::Disconnected { reason }) => {
                    crate::cluster::metrics::watch_disconnected(&name);
                    if !entry.set_stale(true) {
                        tracing::warn!(service = %name, %reason, "registry unreachable; keeping the last known list");
                    }
                }
                None => break,
            }
        }
        if !entry.set_stale(true) {
            tracing::warn!(service = %name, "registry watch ended; keeping the last known list and watching again");
        }
    }
}

/// When to resolve the instances that did not resolve again: with backoff, from the first
/// attempt after each new list.
struct Retry {
    attempt: u32,
    at: Option<tokio::time::Instant>,
}

impl Retry {
    fn after_list(ctx: &Context, entry: &ServiceEntry) -> Retry {
        let mut retry = Retry {
            attempt: 0,
            at: None,
        };
        retry.next(ctx, entry);
        retry
    }

    fn next(&mut self, ctx: &Context, entry: &ServiceEntry) {
        self.at = (!entry.unresolved().is_empty())
            .then(|| tokio::time::Instant::now() + ctx.config.resolve_backoff.delay(self.attempt));
        self.attempt = self.attempt.saturating_add(1);
    }

    /// Resolves when a retry is due; never, when none is.
    async fn due(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// Resolves the current list again and swaps it in when that changed what resolves: an
/// instance whose lookup failed joins as soon as its name resolves, with no registry change.
async fn resolve_again(
    ctx: &Context,
    entry: &ServiceEntry,
    name: &str,
    warned: &mut HashSet<String>,
) {
    let list = entry.instances().to_vec();
    let built = build_members(ctx, name, list, warned).await;
    if built.1 != *entry.unresolved() {
        let joined = entry.unresolved().len().saturating_sub(built.1.len());
        tracing::info!(service = %name, joined, still_unresolved = built.1.len(), "instances resolved again");
        entry.store(built);
    }
}

/// Opens a new watch, retrying with backoff until it works or the directory is dropped.
async fn rewatch(ctx: &Context, entry: &ServiceEntry) -> Option<Events> {
    let mut attempt = 0u32;
    loop {
        let delay = ctx.config.rewatch_backoff.delay(attempt);
        tokio::select! {
            _ = entry.stop().cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        match ctx.registry.watch(entry.key()).await {
            Ok(events) => return Some(events),
            Err(error) => {
                if attempt == 0 {
                    tracing::warn!(service = %entry.key(), %error, "cannot watch the registry; retrying with backoff");
                } else {
                    tracing::debug!(service = %entry.key(), %error, attempt, "cannot watch the registry yet");
                }
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Swaps in a new list, unless empty protection keeps the current one.
async fn apply(
    ctx: &Context,
    entry: &ServiceEntry,
    name: &str,
    list: Vec<ServiceInstance>,
    warned: &mut HashSet<String>,
) {
    if entry.set_stale(false) {
        tracing::info!(service = %name, instances = list.len(), "registry reachable again; list refreshed");
    }
    let current = entry.instances();
    if list.is_empty() && !current.is_empty() && ctx.config.empty_protection {
        if !entry.set_protected(true) {
            tracing::warn!(
                service = %name,
                kept = current.len(),
                "registry reports no instances; empty protection keeps the last list (ejection still removes dead ones)"
            );
        }
        return;
    }
    if entry.set_protected(false) {
        tracing::info!(service = %name, instances = list.len(), "registry lists instances again; empty protection ends");
    }
    if *current == list {
        return;
    }
    tracing::debug!(service = %name, instances = list.len(), "instance list changed");
    if let Some(file) = &ctx.file {
        file.update(entry.key(), &list);
    }
    let members = build_members(ctx, name, list, warned).await;
    entry.store(members);
}
