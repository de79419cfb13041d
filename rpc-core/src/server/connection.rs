//! Serving one TCP connection: read frames, dispatch requests concurrently, answer pings,
//! honour cancels, and drain on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::{dispatch, Dispatch};
use crate::protocol::{Codec, Frame, FrameCodec, FrameError, Kind, Status};
use crate::transport::FrameWriter;
use crate::Service;

/// What every connection of one server shares.
pub(crate) struct ConnectionContext {
    pub services: HashMap<String, Arc<dyn Service>>,
    pub max_frame: usize,
    pub max_in_flight: usize,
    pub idle_timeout: Option<Duration>,
    pub stop: CancellationToken,
    pub force: CancellationToken,
}

/// The calls running on one connection, by request id, so a cancel can abort one.
#[derive(Default)]
pub(crate) struct InFlight {
    tasks: Mutex<HashMap<u64, AbortHandle>>,
    count: AtomicUsize,
}

impl InFlight {
    pub(crate) fn try_reserve(&self, max: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Spawns a handler and records it under `id`. The map stays locked until the handle is
    /// in, so a handler that finishes at once cannot leave a stale entry behind.
    pub(crate) fn spawn<F>(&self, id: u64, handlers: &TaskTracker, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.lock();
        let handle = handlers.spawn(work);
        tasks.insert(id, handle.abort_handle());
    }

    pub(crate) fn finish(&self, id: u64) {
        self.lock().remove(&id);
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    fn cancel(&self, id: u64) {
        if let Some(handle) = self.lock().remove(&id) {
            handle.abort();
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn is_idle(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<ConnectionContext>,
) {
    let (read, write) = stream.into_split();
    let writer_done = CancellationToken::new();
    let writer = FrameWriter::spawn(write, writer_done.clone());
    let mut frames = FramedRead::new(read, FrameCodec::new(context.max_frame));
    let in_flight = Arc::new(InFlight::default());
    let handlers = TaskTracker::new();
    let mut going_away = false;

    loop {
        let idle = async {
            match context.idle_timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            next = frames.next() => next,
            _ = context.stop.cancelled(), if !going_away => {
                going_away = true;
                let _ = writer.send(&Frame::control(Kind::GoAway, 0));
                if in_flight.is_idle() {
                    break;
                }
                continue;
            }
            _ = handlers.wait(), if going_away && in_flight.is_idle() => break,
            _ = context.force.cancelled() => break,
            _ = writer_done.cancelled() => break,
            _ = idle => {
                if in_flight.is_idle() {
                    tracing::debug!(%peer, "closing idle connection");
                    break;
                }
                continue;
            }
        };
        let frame = match next {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                reject_framing(&writer, peer, &e);
                break;
            }
            None => break,
        };
        match frame.kind {
            Kind::Request => {
                let ctx = Dispatch {
                    context: &context,
                    writer: &writer,
                    in_flight: &in_flight,
                    handlers: &handlers,
                    peer,
                    going_away,
                };
                dispatch(frame, ctx);
            }
            Kind::Ping => {
                let _ = writer.send(&Frame::control(Kind::Pong, frame.id));
            }
            Kind::Cancel => in_flight.cancel(frame.id),
            Kind::GoAway | Kind::Pong | Kind::Response => {}
        }
    }

    // Let running handlers finish (or be aborted by a forced shutdown), then flush.
    handlers.close();
    tokio::select! {
        _ = handlers.wait() => {}
        _ = context.force.cancelled() => {
            for (_, handle) in in_flight.lock().drain() {
                handle.abort();
            }
        }
    }
    writer.close();
    writer.closed().await;
}

/// Answers a frame that cannot be parsed with a best-effort bad-request response; the caller
/// then closes the connection, since the byte stream can no longer be trusted.
fn reject_framing(writer: &FrameWriter, peer: SocketAddr, error: &FrameError) {
    match error {
        FrameError::Io(e) => tracing::debug!(%peer, error = %e, "connection read failed"),
        FrameError::Truncated { .. } => {
            tracing::warn!(%peer, error = %error, "truncated frame; closing connection")
        }
        _ => {
            tracing::warn!(%peer, error = %error, "malformed frame; closing connection");
            let message = format!("malformed frame: {error}");
            let _ = writer.send(&Frame::error(
                0,
                Codec::Bincode,
                Status::BadRequest,
                &message,
            ));
        }
    }
}
