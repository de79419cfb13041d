//! Watching one service key: a background task per `watch` call that follows etcd's prefix
//! watch and delivers full snapshots.
//!
//! The first snapshot comes from a prefix get; the watch starts at that get's revision + 1,
//! so no change falls between them. Each batch of events (PUT and DELETE alike) that changes
//! the list gives one new snapshot. When etcd cancels the watch (compaction, lost leader) or
//! the stream breaks, the task delivers [`WatchEvent::Disconnected`], then lists and watches
//! again with backoff, forever, until the stream is dropped or the registry closes.

use futures::stream::{self, BoxStream, StreamExt};
use rpc_core::backoff::Retries;
use rpc_core::registry::{ServiceKey, WatchEvent};
use tokio::sync::{mpsc, watch};

use super::error::Failure;
use super::lease::{sleep_or_stop, stopped};
use super::listing::{Listing, Reader};
use super::retries;
use crate::layout;

/// Snapshots buffered for a slow reader before the task waits for it.
const BUFFER: usize = 64;

/// Starts watching `key`: lists it now (an error here is the caller's), then follows it in a
/// background task. `heartbeat` caps the retry backoff.
pub(crate) async fn start(
    reader: Reader,
    key: &ServiceKey,
    heartbeat: std::time::Duration,
    stop: watch::Receiver<bool>,
) -> Result<BoxStream<'static, WatchEvent>, Failure> {
    let prefix = layout::service_prefix(&reader.root, key);
    let listing = reader.list(&prefix, true).await?;
    let (events, receiver) = mpsc::channel(BUFFER);
    // The channel is new and empty, so the first snapshot always fits.
    let _ = events.try_send(WatchEvent::Snapshot(listing.instances()));
    let follower = Follower {
        reader,
        prefix,
        events,
        stop,
        backoff: retries(heartbeat),
    };
    tokio::spawn(follower.run(listing));
    Ok(stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|event| (event, receiver))
    })
    .boxed())
}

/// Why one watch session ended.
enum End {
    /// The reader dropped the stream, or the registry closed.
    Stop,
    /// The watch must be set up again from a fresh listing.
    Resync(String),
}

struct Follower {
    reader: Reader,
    prefix: String,
    events: mpsc::Sender<WatchEvent>,
    stop: watch::Receiver<bool>,
    backoff: Retries,
}

impl Follower {
    async fn run(mut self, mut listing: Listing) {
        loop {
            let reason = match self.follow(&mut listing).await {
                End::Stop => return,
                End::Resync(reason) => reason,
            };
            tracing::debug!(prefix = %self.prefix, "etcd watch interrupted: {reason}");
            self.reader.endpoints.demote();
            if !self.send(WatchEvent::Disconnected { reason }).await {
                return;
            }
            listing = loop {
                if sleep_or_stop(self.backoff.next_delay(), &mut self.stop).await
                    || self.events.is_closed()
                {
                    return;
                }
                match self.reader.list(&self.prefix, false).await {
                    Ok(listing) => break listing,
                    Err(failure) => {
                        tracing::debug!(prefix = %self.prefix, "etcd watch: list failed: {failure}");
                    }
                }
            };
            if !self.send(WatchEvent::Snapshot(listing.instances())).await {
                return;
            }
        }
    }

    /// One watch session, from the listing's revision + 1.
    async fn follow(&mut self, listing: &mut Listing) -> End {
        let start = listing.revision + 1;
        let opened = self
            .reader
            .endpoints
            .call_once(self.reader.endpoints.request_timeout(), |mut client| {
                let prefix = self.prefix.clone();
                async move {
                    let options = etcd_client::WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(start);
                    client.watch(prefix, Some(options)).await
                }
            })
            .await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(failure) => return End::Resync(format!("cannot start the watch: {failure}")),
        };
        loop {
            let message = tokio::select! {
                _ = self.stop.changed() => {
                    if stopped(&self.stop) {
                        return End::Stop;
                    }
                    continue;
                }
                _ = self.events.closed() => return End::Stop,
                message = stream.next() => message,
            };
            let response = match message {
                Some(Ok(response)) => response,
                Some(Err(e)) => return End::Resync(format!("watch stream failed: {e}")),
                None => return End::Resync("watch stream closed".into()),
            };
            if response.canceled() || response.compact_revision() > 0 {
                return End::Resync(format!(
                    "etcd canceled the watch (compacted revision {}): {}",
                    response.compact_revision(),
                    response.cancel_reason()
                ));
            }
            if response.events().is_empty() {
                continue;
            }
            self.backoff.reset();
            if self.reader.apply(listing, response.events())
                && !self.send(WatchEvent::Snapshot(listing.instances())).await
            {
                return End::Stop;
            }
        }
    }

    /// Delivers one event; false when the reader is gone or the registry closed.
    async fn send(&mut self, event: WatchEvent) -> bool {
        tokio::select! {
            sent = self.events.send(event) => sent.is_ok(),
            _ = self.stop.changed() => false,
        }
    }
}
