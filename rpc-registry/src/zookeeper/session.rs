//! The session keeper: one task per registry that keeps this process's ephemeral nodes alive.
//!
//! - It follows the session state. When the session expires or closes, it opens a new one
//!   (jittered backoff, forever), installs it for everyone, and re-creates every registered
//!   node with its current data, replacing nodes still owned by the dead session.
//! - Every heartbeat interval, and after every reconnect, it checks each registered node
//!   exists and is ours, and re-creates the ones deleted by hand.

use std::sync::Arc;
use std::time::Duration;

use rpc_core::backoff::Backoff;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

use super::nodes::{ensure_node, Ensured};
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
    let mut heartbeat = tokio::time::interval(shared.options.heartbeat);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            state = states.changed() => {
                if !state.is_terminated() {
                    on_state(shared, &client, state).await;
                    continue;
                }
                warn!(
                    registry = "zookeeper",
                    session = %client.session_id(),
                    ?state,
                    "session ended; opening a new one and re-creating this process's nodes"
                );
                client = new_session(shared).await;
                if !shared.replace_client(client.clone()) {
                    return;
                }
                states = client.state_watcher();
                restore_all(shared, &client).await;
            }
            _ = heartbeat.tick() => {
                if client.state() == zk::SessionState::SyncConnected {
                    restore_all(shared, &client).await;
                }
            }
        }
    }
}

/// Logs a connection change of a live session; after a reconnect, checks every node.
async fn on_state(shared: &Shared, client: &zk::Client, state: zk::SessionState) {
    let session = client.session_id();
    match state {
        zk::SessionState::Disconnected => warn!(
            registry = "zookeeper",
            %session,
            endpoints = %shared.endpoints,
            "lost the connection; the client is trying the servers again"
        ),
        _ => {
            info!(registry = "zookeeper", %session, ?state, "connected again");
            restore_all(shared, client).await;
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

/// Checks every registered node against the current session, re-creating what is missing
/// or owned by another session. Failures are logged and left to the next heartbeat.
pub(crate) async fn restore_all(shared: &Shared, client: &zk::Client) {
    let paths: Vec<String> = shared.registered.lock().await.keys().cloned().collect();
    for path in paths {
        // Take the lock per node so that register/deregister never wait for a whole pass,
        // and so that a node deregistered meanwhile is not brought back.
        let registered = shared.registered.lock().await;
        let Some(instance) = registered.get(&path) else {
            continue;
        };
        let data = instance.to_json();
        let limit = shared.options.request_timeout;
        match ensure_node(client, &path, data.as_bytes(), limit).await {
            Ok(Ensured::Unchanged) => {}
            Ok(Ensured::Updated) => {
                info!(registry = "zookeeper", node = %path, "node data was changed; restored it");
            }
            Ok(Ensured::Created) => {
                let session = client.session_id();
                info!(
                    registry = "zookeeper",
                    node = %path,
                    %session,
                    "node was missing; re-created it",
                );
            }
            Ok(Ensured::Replaced { previous_owner }) => info!(
                registry = "zookeeper", node = %path, session = %client.session_id(),
                previous_owner = %zk::SessionId(previous_owner),
                "node belonged to another session; deleted and re-created it"
            ),
            Err(error) => {
                warn!(
                    registry = "zookeeper",
                    node = %path,
                    %error,
                    "cannot restore node; retrying",
                );
                return;
            }
        }
    }
}
