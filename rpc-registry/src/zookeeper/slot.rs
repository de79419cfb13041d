//! The channel between a watch task and its reader: one slot, last state wins.
//!
//! Every event is a full state, so a reader that falls behind needs only the newest snapshot,
//! not every one in between: memory stays bounded however slow the reader is. An outage is
//! not lost by being overwritten, though: a `Disconnected` not yet read is delivered before
//! the snapshot that followed it.

use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use rpc_core::registry::{ServiceInstance, WatchEvent, WatchStream};
use tokio::sync::{watch, Notify};

#[derive(Default)]
struct State {
    /// An outage the reader has not seen yet.
    disconnected: Option<String>,
    /// The newest snapshot the reader has not seen yet.
    snapshot: Option<Vec<ServiceInstance>>,
    /// The writer is gone: the stream ends once the slot is empty.
    closed: bool,
}

struct Inner {
    state: Mutex<State>,
    wake: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writing end; dropping it ends the stream.
pub(crate) struct SlotSender {
    inner: Arc<Inner>,
    /// Resolves `closed` once the reader dropped the stream.
    reader: watch::Sender<()>,
}

impl SlotSender {
    /// Replaces the unread state with `event` (an unread outage is kept).
    pub(crate) fn send(&self, event: WatchEvent) {
        {
            let mut state = self.inner.lock();
            match event {
                WatchEvent::Snapshot(list) => state.snapshot = Some(list),
                WatchEvent::Disconnected { reason } => {
                    state.disconnected = Some(reason);
                    state.snapshot = None;
                }
            }
        }
        self.inner.wake.notify_one();
    }

    /// Resolves when the reader has dropped the stream.
    pub(crate) async fn closed(&self) {
        self.reader.closed().await
    }
}

impl Drop for SlotSender {
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.wake.notify_one();
    }
}

/// A slot holding `first`, and the stream that reads it.
pub(crate) fn slot(first: Vec<ServiceInstance>) -> (SlotSender, WatchStream) {
    let inner = Arc::new(Inner {
        state: Mutex::new(State {
            snapshot: Some(first),
            ..State::default()
        }),
        wake: Notify::new(),
    });
    let (reader, alive) = watch::channel(());
    let sender = SlotSender {
        inner: Arc::clone(&inner),
        reader,
    };
    let stream = futures::stream::unfold((inner, alive), |(inner, alive)| async move {
        loop {
            let next = {
                let mut state = inner.lock();
                if let Some(reason) = state.disconnected.take() {
                    Some(WatchEvent::Disconnected { reason })
                } else if let Some(list) = state.snapshot.take() {
                    Some(WatchEvent::Snapshot(list))
                } else if state.closed {
                    return None;
                } else {
                    None
                }
            };
            match next {
                Some(event) => return Some((event, (inner, alive))),
                None => inner.wake.notified().await,
            }
        }
    });
    (sender, stream.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_core::registry::ServiceKey;

    fn list(port: u16) -> Vec<ServiceInstance> {
        vec![ServiceInstance::new(
            &ServiceKey::new("a.B", "1"),
            "127.0.0.1",
            port,
        )]
    }

    #[tokio::test]
    async fn a_slow_reader_gets_the_outage_then_only_the_newest_snapshot() {
        let (sender, mut stream) = slot(list(1));
        sender.send(WatchEvent::Disconnected { reason: "x".into() });
        for port in 2..1_000 {
            sender.send(WatchEvent::Snapshot(list(port)));
        }
        assert!(matches!(
            stream.next().await,
            Some(WatchEvent::Disconnected { .. })
        ));
        assert_eq!(stream.next().await, Some(WatchEvent::Snapshot(list(999))));
        drop(sender);
        assert_eq!(stream.next().await, None);
    }
}
