//! Watching one service key: an SDK subscription (the server pushes the full list after each
//! change, batched for about a second) plus a listing every heartbeat. A listing that fails
//! reports [`WatchEvent::Disconnected`]; the next one that works delivers a fresh snapshot.

use std::sync::Arc;

use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, ServiceInstance as NacosInstance,
};
use rpc_core::registry::{
    watch_channel, RegistryError, ServiceInstance, ServiceKey, WatchEvent, WatchStream,
};
use tokio::sync::{mpsc, watch as state};
use tokio::time::MissedTickBehavior;
use tracing::debug;

use super::{service_name, within, Shared};

/// Snapshots a watch buffers for a slow reader before the watch waits for it.
const BUFFER: usize = 16;

/// Receives the SDK's pushes; keeps only the latest list.
struct Listener(state::Sender<Option<Vec<NacosInstance>>>);

impl NamingEventListener for Listener {
    fn event(&self, event: Arc<NamingChangeEvent>) {
        self.0
            .send_replace(Some(event.instances.clone().unwrap_or_default()));
    }
}

/// Starts watching `key`: the current snapshot first, then one per change.
pub(super) async fn watch(
    shared: Arc<Shared>,
    key: ServiceKey,
) -> Result<WatchStream, RegistryError> {
    let name = service_name(&key, "watch")?;
    let (pushed, pushes) = state::channel(None);
    let listener: Arc<dyn NamingEventListener> = Arc::new(Listener(pushed));
    let group = Some(shared.options.group.clone());
    within(
        shared.options.request_timeout,
        shared
            .naming
            .subscribe(name.clone(), group, Vec::new(), listener.clone()),
    )
    .await
    .map_err(|e| shared.error("watch", &name, e))?;
    let snapshot = shared.list(&key).await?;
    let (tx, stream) = watch_channel(BUFFER);
    let _ = tx.try_send(WatchEvent::Snapshot(snapshot.clone()));
    let follower = Follower {
        shared,
        key,
        tx,
        last: Some(snapshot),
    };
    tokio::spawn(follower.run(pushes, listener, name));
    Ok(stream)
}

struct Follower {
    shared: Arc<Shared>,
    key: ServiceKey,
    tx: mpsc::Sender<WatchEvent>,
    /// The last snapshot sent; `None` after a `Disconnected`.
    last: Option<Vec<ServiceInstance>>,
}

impl Follower {
    async fn run(
        mut self,
        mut pushes: state::Receiver<Option<Vec<NacosInstance>>>,
        listener: Arc<dyn NamingEventListener>,
        name: String,
    ) {
        let mut resync = tokio::time::interval(self.shared.options.heartbeat);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        resync.reset();
        loop {
            let snapshot = tokio::select! {
                _ = self.tx.closed() => break,
                _ = self.shared.closed() => break,
                changed = pushes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let pushed = pushes.borrow_and_update().clone().unwrap_or_default();
                    Ok(self.shared.convert(&self.key, &pushed))
                }
                _ = resync.tick() => self.shared.list(&self.key).await,
            };
            let delivered = match snapshot {
                Ok(snapshot) => self.deliver(snapshot).await,
                Err(error) => self.disconnected(&error.to_string()).await,
            };
            if !delivered {
                break;
            }
        }
        let group = Some(self.shared.options.group.clone());
        let unsubscribe = self
            .shared
            .naming
            .unsubscribe(name, group, Vec::new(), listener);
        let _ = within(self.shared.options.request_timeout, unsubscribe).await;
        debug!(registry = "nacos", key = %self.key, "watch stopped");
    }

    async fn deliver(&mut self, snapshot: Vec<ServiceInstance>) -> bool {
        if self.last.as_ref() == Some(&snapshot) {
            return true;
        }
        self.last = Some(snapshot.clone());
        self.send(WatchEvent::Snapshot(snapshot)).await
    }

    async fn disconnected(&mut self, reason: &str) -> bool {
        if self.last.is_none() {
            return true;
        }
        debug!(registry = "nacos", key = %self.key, "{reason}; keeping the last snapshot");
        self.last = None;
        let reason = reason.to_string();
        self.send(WatchEvent::Disconnected { reason }).await
    }

    async fn send(&self, event: WatchEvent) -> bool {
        tokio::select! {
            sent = self.tx.send(event) => sent.is_ok(),
            _ = self.shared.closed() => false,
        }
    }
}
