//! Watching one service key: a persistent recursive watch on its parent path; every node
//! event, and every reconnect, lists the children again and delivers the full snapshot.
//!
//! When the connection drops the stream reports [`WatchEvent::Disconnected`]; when the
//! session expires it waits for the keeper's new session and watches again from there.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::FutureExt;
use rpc_core::registry::{RegistryError, ServiceInstance, ServiceKey, WatchEvent};
use tracing::debug;
use zookeeper_client as zk;

use super::error::{request_error, within};
use super::read::list_instances;
use super::shared::Shared;
use super::slot::{slot, SlotSender};
use super::RETRY;

/// Starts watching `key`: the current snapshot first, then one snapshot per change.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    key: ServiceKey,
) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
    let client = shared.client()?;
    let path = shared.layout.key_path(&key);
    let (watcher, snapshot) = start(&shared, &client, &key)
        .await
        .map_err(|e| request_error("watch", &path, &shared.endpoints, &e))?;
    // One slot, last state wins: memory stays bounded however slow the reader is.
    let (tx, stream) = slot(snapshot.clone());
    let follower = Follower {
        shared,
        key,
        tx,
        last: Some(snapshot),
    };
    tokio::spawn(follower.run(client, watcher));
    Ok(stream)
}

/// Adds the watch, then lists: no change can fall between the two.
async fn start(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
) -> Result<(zk::PersistentWatcher, Vec<ServiceInstance>), zk::Error> {
    let path = shared.layout.key_path(key);
    let limit = shared.options.request_timeout;
    let watcher = within(
        limit,
        client.watch(&path, zk::AddWatchMode::PersistentRecursive),
    )
    .await?;
    let snapshot = list_instances(shared, client, key).await?;
    Ok((watcher, snapshot))
}

/// Why following one session stopped.
enum Stop {
    /// The consumer dropped the stream, or the registry shut down.
    Done,
    /// The session ended; follow the next one.
    SessionEnded,
}

/// What to do after a watcher event.
enum Next {
    /// List again and deliver the snapshot.
    Relist,
    /// Add the watch again (after a reconnect), then list again.
    Rewatch,
    /// Nothing until the next event.
    Wait,
    /// The session ended: no more events will come from this watcher.
    Stop,
}

/// The task behind one watch stream.
struct Follower {
    shared: Arc<Shared>,
    key: ServiceKey,
    tx: SlotSender,
    /// The last snapshot sent; `None` after a `Disconnected`, so the next one always goes out.
    last: Option<Vec<ServiceInstance>>,
}

impl Follower {
    async fn run(mut self, mut client: zk::Client, mut watcher: zk::PersistentWatcher) {
        loop {
            match self.follow(&client, &mut watcher).await {
                Stop::Done => break,
                Stop::SessionEnded => {}
            }
            match self.restart(client.session_id()).await {
                Some((next, next_watcher)) => {
                    client = next;
                    watcher = next_watcher;
                }
                None => break,
            }
        }
        debug!(registry = "zookeeper", key = %self.key, "watch stopped");
    }

    /// Follows one session's watcher until the session ends or the stream is dropped.
    async fn follow(&mut self, client: &zk::Client, watcher: &mut zk::PersistentWatcher) -> Stop {
        let mut sessions = self.shared.subscribe();
        let session_id = client.session_id();
        let mut backoff = RETRY.retries();
        // Set when a listing failed and must be tried again.
        let mut relist_at: Option<tokio::time::Instant> = None;
        // Set when the watch must be added again before listing.
        let mut rewatch = false;
        loop {
            let retry = async {
                match relist_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mut relist = false;
            tokio::select! {
                _ = self.tx.closed() => return Stop::Done,
                changed = sessions.changed() => {
                    let replaced = match &*sessions.borrow_and_update() {
                        None => true,
                        Some(current) => current.session_id() != session_id,
                    };
                    if changed.is_err() || self.shared.is_closed() {
                        return Stop::Done;
                    }
                    if replaced {
                        return Stop::SessionEnded;
                    }
                }
                event = watcher.changed() => match self.on_event(&event) {
                    Next::Stop => return Stop::SessionEnded,
                    Next::Rewatch => {
                        rewatch = true;
                        relist = true;
                    }
                    Next::Relist => {
                        // Coalesce a burst of events into one listing.
                        while let Some(more) = watcher.changed().now_or_never() {
                            match self.on_event(&more) {
                                Next::Stop => return Stop::SessionEnded,
                                Next::Rewatch => rewatch = true,
                                Next::Relist | Next::Wait => {}
                            }
                        }
                        relist = true;
                    }
                    Next::Wait => {}
                },
                _ = retry => relist = true,
            }
            if rewatch {
                let path = self.shared.layout.key_path(&self.key);
                let limit = self.shared.options.request_timeout;
                let mode = zk::AddWatchMode::PersistentRecursive;
                match within(limit, client.watch(&path, mode)).await {
                    Ok(fresh) => {
                        // The old watcher goes after the new one exists, so the server keeps
                        // watching throughout.
                        *watcher = fresh;
                        rewatch = false;
                    }
                    Err(error) => {
                        debug!(
                            registry = "zookeeper",
                            key = %self.key,
                            %error,
                            "re-adding the watch failed; retrying",
                        );
                        relist_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                        continue;
                    }
                }
            }
            if relist {
                match list_instances(&self.shared, client, &self.key).await {
                    Ok(snapshot) => {
                        relist_at = None;
                        backoff.reset();
                        self.deliver(snapshot);
                    }
                    Err(error) => {
                        debug!(
                            registry = "zookeeper",
                            key = %self.key,
                            %error,
                            "listing failed; retrying",
                        );
                        relist_at = Some(tokio::time::Instant::now() + backoff.next_delay());
                    }
                }
            }
        }
    }

    /// Waits for a session other than `ended`, then watches and lists again on it.
    async fn restart(
        &mut self,
        ended: zk::SessionId,
    ) -> Option<(zk::Client, zk::PersistentWatcher)> {
        let mut sessions = self.shared.subscribe();
        let mut backoff = RETRY.retries();
        loop {
            let current = sessions.borrow_and_update().clone()?;
            let usable = current.session_id() != ended && !current.state().is_terminated();
            if usable {
                match start(&self.shared, &current, &self.key).await {
                    Ok((watcher, snapshot)) => {
                        self.deliver(snapshot);
                        return Some((current, watcher));
                    }
                    Err(error) => {
                        debug!(
                            registry = "zookeeper",
                            key = %self.key,
                            %error,
                            "re-watch failed; retrying",
                        )
                    }
                }
            }
            let wait = if usable {
                backoff.next_delay()
            } else {
                Duration::MAX
            };
            tokio::select! {
                _ = self.tx.closed() => return None,
                changed = sessions.changed() => if changed.is_err() { return None },
                _ = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {}
            }
        }
    }

    /// What one watcher event calls for; reports `Disconnected` when the connection drops.
    fn on_event(&mut self, event: &zk::WatchedEvent) -> Next {
        if event.event_type != zk::EventType::Session {
            return Next::Relist;
        }
        match event.session_state {
            zk::SessionState::Disconnected => {
                self.disconnected("lost the connection to zookeeper");
                Next::Wait
            }
            // Events during the outage may be lost (ZOOKEEPER-4698), and a server we moved
            // to may not hold the watch: watch and list again.
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => Next::Rewatch,
            state => {
                self.disconnected(&format!("zookeeper session ended: {state:?}"));
                Next::Stop
            }
        }
    }

    fn deliver(&mut self, snapshot: Vec<ServiceInstance>) {
        if self.last.as_ref() == Some(&snapshot) {
            return;
        }
        self.last = Some(snapshot.clone());
        self.tx.send(WatchEvent::Snapshot(snapshot));
    }

    fn disconnected(&mut self, reason: &str) {
        if self.last.is_none() {
            return;
        }
        debug!(
            registry = "zookeeper",
            key = %self.key,
            "{reason}; keeping the last snapshot until reconnected",
        );
        self.last = None;
        self.tx.send(WatchEvent::Disconnected {
            reason: reason.to_string(),
        });
    }
}
