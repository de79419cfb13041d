//! The session keeper: one task per registry that keeps this process's ephemeral nodes alive.
//!
//! - It follows the session state. When the session expires or closes, it opens a new one
//!   (jittered backoff, forever), installs it for everyone, and re-creates every registered
//!   node with its current data, replacing nodes still owned by the dead session.
//! - One persistent recursive watch on the root reports an own node deleted or changed by
//!   hand, and it is put back at once; after every reconnect every node is checked. There is
//!   no per-heartbeat pass: the client's pings keep the session, whatever the node count.
//! - A node another client's live session owns is never taken.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::backoff::Backoff;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};
use zookeeper_client as zk;

use futures::StreamExt;

use super::acl::NodeAcls;
use super::error::within;
use super::nodes::{delete_node, ensure_node, Ensured};
use super::shared::Shared;

/// Starts the keeper for `shared`; it ends when the registry is shut down or dropped.
pub(crate) fn spawn_keeper(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let closed = shared.clone();
        tokio::select! {
            _ = keep(&shared) => {}
            _ = closed.closed() => {}
        }
        debug!(registry = "zookeeper", "session keeper stopped");
    });
}

async fn keep(shared: &Shared) {
    let Ok(mut client) = shared.client() else {
        return;
    };
    let mut states = client.state_watcher();
    let mut guard = add_guard(shared, &client).await;
    // Only while the guard watch could not be added: try again, and check every node.
    let mut retry = tokio::time::interval(shared.options.heartbeat);
    retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            state = states.changed() => {
                if !state.is_terminated() {
                    if on_state(shared, &client, state).await {
                        // The server we are connected to now may not hold the watch.
                        guard = add_guard(shared, &client).await;
                        restore_all(shared, &client).await;
                    }
                    continue;
                }
                warn!(
                    registry = "zookeeper",
                    session = %client.session_id(),
                    ?state,
                    "session ended; opening a new one and re-creating this process's nodes"
                );
                crate::metrics::connected("zookeeper", false);
                crate::metrics::lost("zookeeper");
                client = new_session(shared).await;
                if !shared.replace_client(client.clone()) {
                    return;
                }
                states = client.state_watcher();
                guard = add_guard(shared, &client).await;
                restore_all(shared, &client).await;
            }
            event = next_event(&mut guard) => match event.event_type {
                zk::EventType::NodeDeleted | zk::EventType::NodeDataChanged => {
                    restore_one(shared, &client, &event.path).await;
                }
                zk::EventType::Session if event.session_state.is_terminated() => guard = None,
                _ => {}
            },
            _ = retry.tick(), if guard.is_none() => {
                if client.state() == zk::SessionState::SyncConnected {
                    guard = add_guard(shared, &client).await;
                    restore_all(shared, &client).await;
                }
            }
        }
    }
}

/// One persistent recursive watch on the root: it reports a deleted or changed own node at
/// once, for the cost of one watch however many nodes there are.
async fn add_guard(shared: &Shared, client: &zk::Client) -> Option<zk::PersistentWatcher> {
    let root = shared.layout.root();
    let mode = zk::AddWatchMode::PersistentRecursive;
    match within(shared.options.request_timeout, client.watch(root, mode)).await {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            debug!(registry = "zookeeper", %error, "cannot watch own nodes yet; retrying every heartbeat");
            None
        }
    }
}

/// The guard's next event; never, without a guard.
async fn next_event(guard: &mut Option<zk::PersistentWatcher>) -> zk::WatchedEvent {
    match guard {
        Some(watcher) => watcher.changed().await,
        None => std::future::pending().await,
    }
}

/// Logs a connection change of a live session; returns whether it connected again.
async fn on_state(shared: &Shared, client: &zk::Client, state: zk::SessionState) -> bool {
    let session = client.session_id();
    match state {
        zk::SessionState::Disconnected => {
            crate::metrics::connected("zookeeper", false);
            warn!(
                registry = "zookeeper",
                %session,
                endpoints = %shared.endpoints,
                "lost the connection; the client is trying the servers again"
            );
            false
        }
        _ => {
            crate::metrics::connected("zookeeper", true);
            info!(registry = "zookeeper", %session, ?state, "connected again");
            true
        }
    }
}

/// Opens a new session, retrying forever with jittered backoff. Logs the first failure and
/// the recovery, not every attempt.
async fn new_session(shared: &Shared) -> zk::Client {
    // Short enough to come back before the server expires the old session and its nodes.
    let cap = (shared.options.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(3));
    let mut backoff = Backoff::new(Duration::from_millis(50), cap).retries();
    let mut failures = 0u64;
    loop {
        match shared.open_session().await {
            Ok(client) => {
                crate::metrics::connected("zookeeper", true);
                info!(registry = "zookeeper", session = %client.session_id(),
                    timeout_ms = client.session_timeout().as_millis() as u64, failures,
                    "opened a new session");
                return client;
            }
            Err(error) => {
                if failures == 0 {
                    warn!(registry = "zookeeper", endpoints = %shared.endpoints, %error,
                        "cannot open a new session; retrying with backoff until it works");
                } else {
                    debug!(registry = "zookeeper", %error, failures, "new session still failing");
                }
                failures += 1;
            }
        }
        backoff.wait().await;
    }
}

/// Nodes checked at once after a reconnect or a new session.
const RESTORE_CONCURRENCY: usize = 64;

/// Checks every registered node against the current session, re-creating what is missing
/// or owned by an earlier session of ours. Failures are logged; the next reconnect (or the
/// guard's next event) tries again.
pub(crate) async fn restore_all(shared: &Shared, client: &zk::Client) {
    let paths: Vec<String> = shared.registered.lock().await.keys().cloned().collect();
    futures::stream::iter(paths)
        .for_each_concurrent(RESTORE_CONCURRENCY, |path| async move {
            restore_one(shared, client, &path).await;
        })
        .await;
}

/// Re-creates one own node if it is missing or not as registered; other paths are ignored.
async fn restore_one(shared: &Shared, client: &zk::Client, path: &str) {
    let Some(instance) = shared.registered.lock().await.get(path).cloned() else {
        return;
    };
    let data = instance.to_json();
    let limit = shared.options.request_timeout;
    let ours = |owner| shared.is_ours(owner);
    let acls = NodeAcls::of(&shared.options);
    match ensure_node(client, path, data.as_bytes(), limit, acls, &ours).await {
        Ok(Ensured::Unchanged) => {}
        Ok(Ensured::Updated) => {
            info!(registry = "zookeeper", node = %path, "node data was changed; restored it");
        }
        Ok(Ensured::Created) => {
            let session = client.session_id();
            info!(registry = "zookeeper", node = %path, %session, "node was missing; re-created it");
        }
        Ok(Ensured::Replaced { previous_owner }) => info!(
            registry = "zookeeper", node = %path, session = %client.session_id(),
            previous_owner = %zk::SessionId(previous_owner),
            "node belonged to an earlier session of ours; deleted and re-created it"
        ),
        Ok(Ensured::Taken { owner, .. }) => {
            shared.forget_if(path, &instance).await;
            error!(
                registry = "zookeeper", node = %path, owner = %zk::SessionId(owner),
                "another live provider took this node; no longer publishing it"
            );
        }
        Err(error) => {
            warn!(registry = "zookeeper", node = %path, %error, "cannot restore node");
            return;
        }
    }
    // Deregistered while it was being restored: take it away again.
    if shared.registered.lock().await.get(path) != Some(&instance) {
        let _ = delete_node(client, path, limit).await;
    }
}
