//! Serving one TCP connection: read frames, dispatch requests concurrently, answer pings,
//! honour cancels, and drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::ConnectionContext;
use super::dispatch::{dispatch, Dispatch};
use super::in_flight::InFlight;
use crate::protocol::{Codec, Frame, FrameCodec, FrameError, Kind, Status};
use crate::transport::FrameWriter;

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
