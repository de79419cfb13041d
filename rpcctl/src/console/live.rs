//! The live page's feed: one registry watch per service key, shared by every open page,
//! turned into `join` / `leave` / `update` events by the same tracker as `rpcctl watch`, and
//! `rules` events when a service's overrides or routes change. A page that connects first
//! gets the providers there now as `present` events, then the changes as they happen.
//!
//! Bounded: the keys followed ([`MAX_KEYS`]), the queue between the watches and the hub
//! (watches wait when it is full), the broadcast buffer (a page that falls behind gets a
//! `lagged` event and starts over) and the open pages (`MAX_LIVE_CLIENTS`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rpc_core::documents::{DocumentEvent, Documents};
use rpc_core::registry::WatchEvent;
use rpc_core::{Registry, ServiceKey};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::api::parsed;
use super::error::ApiError;
use super::State as Shared;
use crate::commands::watch::{Event, Kind, Tracker};

/// How often the key list is read for new services.
const POLL: Duration = Duration::from_secs(1);
/// The most service keys followed.
const MAX_KEYS: usize = 1024;
/// Events waiting for the hub.
const QUEUE: usize = 1024;
/// Events kept for pages that are behind.
const BACKLOG: usize = 1024;

/// What the watch tasks send the hub.
enum Message {
    Instances(ServiceKey, WatchEvent),
    Documents(ServiceKey, DocumentEvent),
    Ended(ServiceKey),
}

/// The shared feed.
pub(crate) struct Hub {
    events: broadcast::Sender<Arc<str>>,
    trackers: Arc<Mutex<BTreeMap<ServiceKey, Tracker>>>,
}

impl Hub {
    /// Starts following every service in `registry`; the task runs until aborted.
    pub(crate) fn start(registry: Arc<dyn Registry>) -> (Hub, JoinHandle<()>) {
        let (events, _) = broadcast::channel(BACKLOG);
        let trackers = Arc::new(Mutex::new(BTreeMap::new()));
        let hub = Hub {
            events: events.clone(),
            trackers: Arc::clone(&trackers),
        };
        let task = tokio::spawn(follow(registry, events, trackers));
        (hub, task)
    }

    /// The providers registered now, as `present` events.
    fn present(&self) -> Vec<Arc<str>> {
        let trackers = self.trackers.lock().unwrap_or_else(|p| p.into_inner());
        let at = SystemTime::now();
        trackers
            .iter()
            .flat_map(|(key, tracker)| {
                tracker.known().map(move |instance| {
                    let mut event = Event::new(at, Kind::Present, key);
                    event.instance = Some(instance.clone());
                    Arc::from(event.json().to_string())
                })
            })
            .collect()
    }
}

/// The hub's loop: finds keys, starts their watches, turns what they report into events.
async fn follow(
    registry: Arc<dyn Registry>,
    events: broadcast::Sender<Arc<str>>,
    trackers: Arc<Mutex<BTreeMap<ServiceKey, Tracker>>>,
) {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let mut documents: BTreeMap<ServiceKey, Documents> = BTreeMap::new();
    // Keys there at the first look show their providers as `present`; later ones as joins.
    let mut first_look = true;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let send = |value: serde_json::Value| {
        // No page open is fine.
        let _ = events.send(Arc::from(value.to_string()));
    };
    loop {
        tokio::select! {
            _ = poll.tick() => {
                let Ok(keys) = registry.services().await else { continue };
                let initial = std::mem::take(&mut first_look);
                for key in keys {
                    let skip = {
                        let trackers = trackers.lock().unwrap_or_else(|p| p.into_inner());
                        trackers.contains_key(&key) || trackers.len() >= MAX_KEYS
                    };
                    if skip {
                        continue;
                    }
                    if let Err(e) = start_watches(&registry, &key, &tx).await {
                        tracing::warn!("console: cannot watch {key} yet: {e}");
                        continue;
                    }
                    trackers
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.clone(), Tracker::new(key, initial));
                }
            }
            Some(message) = rx.recv() => match message {
                Message::Instances(key, event) => {
                    let made = {
                        let mut trackers = trackers.lock().unwrap_or_else(|p| p.into_inner());
                        match trackers.get_mut(&key) {
                            Some(tracker) => tracker.apply(event, SystemTime::now()),
                            None => Vec::new(),
                        }
                    };
                    // `present` too: a page that connected before the first snapshot has
                    // them from nowhere else (a page seeing one twice just shows it again).
                    for event in &made {
                        send(event.json());
                    }
                }
                Message::Documents(key, DocumentEvent::Snapshot(now)) => {
                    let before = documents.insert(key.clone(), now.clone());
                    if before.is_some_and(|before| before != now) {
                        send(json!({
                            "event": "rules",
                            "key": key.to_string(),
                            "overrides": now.overrides.as_deref().map(parsed),
                            "routes": now.routes.as_deref().map(parsed),
                        }));
                    }
                }
                Message::Documents(_, DocumentEvent::Disconnected { .. }) => {}
                Message::Ended(key) => {
                    // Followed again from the next poll.
                    trackers.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    documents.remove(&key);
                }
            },
        }
    }
}

/// Starts the instance watch and, where the backend has one, the documents watch of `key`.
async fn start_watches(
    registry: &Arc<dyn Registry>,
    key: &ServiceKey,
    tx: &mpsc::Sender<Message>,
) -> Result<(), rpc_core::RegistryError> {
    let mut instances = registry.watch(key).await?;
    let (owned, sender) = (key.clone(), tx.clone());
    tokio::spawn(async move {
        while let Some(event) = instances.next().await {
            if sender
                .send(Message::Instances(owned.clone(), event))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sender.send(Message::Ended(owned)).await;
    });
    match registry.watch_documents(key).await {
        Ok(mut stream) => {
            let (owned, sender) = (key.clone(), tx.clone());
            tokio::spawn(async move {
                while let Some(event) = stream.next().await {
                    let message = Message::Documents(owned.clone(), event);
                    if sender.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => tracing::debug!("console: no rule changes for {key}: {e}"),
    }
    Ok(())
}

/// `GET /api/events`: the server-sent event stream of the live page.
pub(crate) async fn events(State(console): State<Shared>) -> Response {
    let Ok(slot) = Arc::clone(&console.live_clients).try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live pages are open; close one and reload",
        )
        .into_response();
    };
    // Subscribed before the snapshot is taken, so nothing falls between the two; a join
    // seen in both just shows the provider again.
    let changes = BroadcastStream::new(console.hub.events.subscribe());
    let present = futures::stream::iter(console.hub.present()).map(Ok);
    let stream = present.chain(changes).map(move |item| {
        let _open = &slot;
        Ok::<_, Infallible>(sse_event(item))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One event for the page; a page that fell behind is told to start over.
fn sse_event(item: Result<Arc<str>, BroadcastStreamRecvError>) -> SseEvent {
    match item {
        Ok(data) => SseEvent::default().data(&*data),
        Err(BroadcastStreamRecvError::Lagged(missed)) => SseEvent::default()
            .event("lagged")
            .data(json!({ "missed": missed }).to_string()),
    }
}
