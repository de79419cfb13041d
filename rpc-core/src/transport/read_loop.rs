//! A client connection's reader: hands each reply to its waiting call, answers pings, and
//! closes the connection, saying why, when the socket ends or breaks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use super::connection::{Closing, Shared};
use super::liveness::HeardReader;
use super::tls::{looks_like_tls, tls_read_failure};
use crate::protocol::{Frame, FrameCodec, FrameError, Kind};

/// Why a plain connection broke, when the provider answered with TLS.
const PLAIN_TO_TLS: &str = "the provider answered with TLS: it requires TLS; give this client trust roots (client.tls.ca, RPC_TLS_CA, --tls-ca)";

/// Reads frames until the connection ends, then closes it with the reason.
pub(super) async fn run<R: AsyncRead + Unpin>(
    mut frames: FramedRead<HeardReader<R>, FrameCodec>,
    shared: Arc<Shared>,
    tls: bool,
) {
    let answered_tls = |frames: &FramedRead<HeardReader<R>, FrameCodec>| {
        !tls && frames.get_ref().first_bytes().is_some_and(looks_like_tls)
    };
    let reason = loop {
        let next = tokio::select! {
            next = frames.next() => next,
            _ = shared.closed.cancelled() => break Closing::Lost("the connection was closed".to_string()),
        };
        let frame = match next {
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Io(e))) => {
                if let Some(failure) = tls.then(|| tls_read_failure(&e)).flatten() {
                    tracing::info!(peer = %shared.addr, error = %failure, "TLS connection to provider failed");
                    break Closing::Tls(failure);
                }
                tracing::info!(peer = %shared.addr, error = %e, "connection to provider lost");
                break Closing::Lost(format!("connection error: {e}"));
            }
            Some(Err(_)) if answered_tls(&frames) => {
                tracing::info!(peer = %shared.addr, "plaintext connection answered with TLS");
                break Closing::Tls(PLAIN_TO_TLS.to_string());
            }
            Some(Err(e)) => {
                tracing::warn!(peer = %shared.addr, error = %e, "bad frame from server; closing connection");
                break Closing::Lost(format!("bad frame from server: {e}"));
            }
            None if answered_tls(&frames) => break Closing::Tls(PLAIN_TO_TLS.to_string()),
            None => break Closing::Lost("the server closed the connection".to_string()),
        };
        match frame.kind {
            Kind::Response | Kind::Pong => {
                let waiting = shared.lock_pending().calls.remove(&frame.id);
                if let Some(waiting) = waiting {
                    let _ = waiting.reply.send(Ok(frame));
                }
            }
            Kind::Ping => {
                let _ = shared.writer.send(&Frame::control(Kind::Pong, frame.id));
            }
            Kind::GoAway => {
                tracing::debug!(peer = %shared.addr, "server sent goaway");
                shared.going_away.store(true, Ordering::Release);
            }
            Kind::Request | Kind::Cancel => {
                tracing::debug!(peer = %shared.addr, kind = ?frame.kind, "ignoring unexpected frame from server");
            }
        }
        if shared.going_away.load(Ordering::Acquire) && shared.lock_pending().calls.is_empty() {
            break Closing::Lost("the server sent goaway and every call has finished".to_string());
        }
    };
    shared.close(reason);
}
