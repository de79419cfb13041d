//! Watching one service key: keyspace notifications for its keys on a pub/sub connection of
//! its own, and a full listing (scan + mget) after each burst of events, after every
//! reconnect, and every heartbeat (the resync), so a lost message or a `FLUSHALL`, which
//! sends no per-key events, leaves a consumer wrong for one heartbeat at most.
//!
//! When the pub/sub connection drops, or a listing fails, the stream reports
//! [`WatchEvent::Disconnected`] once, then reconnects with backoff and delivers a fresh
//! snapshot.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use redis::aio::PubSubStream;
use rpc_core::registry::{
    watch_channel, RegistryError, ServiceInstance, ServiceKey, WatchEvent, WatchStream,
};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tracing::debug;

use super::connection::Failure;
use super::listing::list_instances;
use super::notifications::{changes_listing, channel_pattern, ensure};
use super::shared::Shared;
use super::RETRY;
use crate::layout;

/// Snapshots a watch buffers for a slow reader before the watch waits for it.
const BUFFER: usize = 16;

/// Starts watching `key`: the current snapshot first, then one per change.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    key: ServiceKey,
) -> Result<WatchStream, RegistryError> {
    shared.check_open()?;
    let path = layout::service_prefix(&shared.options.root, &key);
    let fail = |e: Failure| e.into_error(&shared.connection.endpoint, "watch", &path);
    let warned = AtomicBool::new(false);
    let messages = subscribe(&shared, &key, &warned).await.map_err(fail)?;
    let snapshot = list_instances(
        &shared.connection,
        &shared.options.root,
        &key,
        &shared.warn_once,
    )
    .await
    .map_err(fail)?;
    let (tx, stream) = watch_channel(BUFFER);
    let _ = tx.try_send(WatchEvent::Snapshot(snapshot.clone()));
    let follower = Follower {
        shared,
        key,
        tx,
        last: Some(snapshot),
        warned,
    };
    tokio::spawn(follower.run(messages));
    Ok(stream)
}

/// Subscribes first, so that no change falls between the subscription and the listing that
/// follows it.
async fn subscribe(
    shared: &Shared,
    key: &ServiceKey,
    warned: &AtomicBool,
) -> Result<PubSubStream, Failure> {
    ensure(&shared.connection, warned).await?;
    let mut pubsub = shared.connection.pubsub().await?;
    let prefix = layout::service_prefix(&shared.options.root, key);
    let pattern = channel_pattern(shared.options.db, &prefix);
    tokio::time::timeout(shared.options.request_timeout, pubsub.psubscribe(&pattern))
        .await
        .map_err(|_| Failure::Unreachable("no answer to PSUBSCRIBE".into()))?
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    Ok(pubsub.into_on_message())
}

/// The task behind one watch stream.
struct Follower {
    shared: Arc<Shared>,
    key: ServiceKey,
    tx: mpsc::Sender<WatchEvent>,
    /// The last snapshot sent; `None` after a `Disconnected`, so the next one always goes out.
    last: Option<Vec<ServiceInstance>>,
    /// Whether the notifications warning was logged.
    warned: AtomicBool,
}

impl Follower {
    async fn run(mut self, messages: PubSubStream) {
        let mut messages = Some(messages);
        let mut resync = tokio::time::interval(self.shared.options.heartbeat);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        resync.reset();
        let mut backoff = RETRY.retries();
        let mut relist = false;
        loop {
            if messages.is_none() {
                match subscribe(&self.shared, &self.key, &self.warned).await {
                    Ok(fresh) => {
                        messages = Some(fresh);
                        relist = true;
                    }
                    Err(error) => {
                        self.disconnected(&format!("cannot subscribe again: {error}"))
                            .await;
                        if !self.pause(backoff.next_delay()).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            if !relist {
                let Some(stream) = messages.as_mut() else {
                    continue;
                };
                tokio::select! {
                    _ = self.tx.closed() => break,
                    _ = self.shared.closed() => break,
                    _ = resync.tick() => relist = true,
                    message = stream.next() => match message {
                        Some(message) => {
                            relist = relevant(&message);
                            // Coalesce a burst of events into one listing.
                            while let Some(Some(more)) = stream.next().now_or_never() {
                                relist |= relevant(&more);
                            }
                        }
                        None => {
                            messages = None;
                            self.disconnected("lost the pub/sub connection to redis").await;
                            continue;
                        }
                    },
                }
            }
            if relist {
                let listed = list_instances(
                    &self.shared.connection,
                    &self.shared.options.root,
                    &self.key,
                    &self.shared.warn_once,
                )
                .await;
                match listed {
                    Ok(snapshot) => {
                        relist = false;
                        backoff.reset();
                        if !self.deliver(snapshot).await {
                            break;
                        }
                    }
                    Err(error) => {
                        self.disconnected(&format!("listing failed: {error}")).await;
                        if !self.pause(backoff.next_delay()).await {
                            break;
                        }
                    }
                }
            }
        }
        debug!(registry = "redis", key = %self.key, "watch stopped");
    }

    /// Sleeps `delay`; answers `false` when the stream was dropped or the registry shut down.
    async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.tx.closed() => false,
            _ = self.shared.closed() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Sends a snapshot that differs from the last one; `false` once nobody listens.
    async fn deliver(&mut self, snapshot: Vec<ServiceInstance>) -> bool {
        if self.last.as_ref() == Some(&snapshot) {
            return true;
        }
        self.last = Some(snapshot.clone());
        self.send(WatchEvent::Snapshot(snapshot)).await
    }

    async fn disconnected(&mut self, reason: &str) {
        if self.last.is_none() {
            return;
        }
        debug!(registry = "redis", key = %self.key, "{reason}; keeping the last snapshot until reconnected");
        self.last = None;
        let reason = reason.to_string();
        self.send(WatchEvent::Disconnected { reason }).await;
    }

    /// Waits for room in the buffer (back-pressure from a slow reader), unless shut down.
    async fn send(&self, event: WatchEvent) -> bool {
        tokio::select! {
            sent = self.tx.send(event) => sent.is_ok(),
            _ = self.shared.closed() => false,
        }
    }
}

/// Whether a keyspace message can change the listing (its payload is the event name).
fn relevant(message: &redis::Msg) -> bool {
    std::str::from_utf8(message.get_payload_bytes()).map_or(true, changes_listing)
}
