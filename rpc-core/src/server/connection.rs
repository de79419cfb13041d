//! Serving one TCP connection: read frames, dispatch requests concurrently, answer pings,
//! honour cancels, stop reading while the peer does not read its replies, and drain on
//! shutdown or when reclaimed for a newcomer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::admission::Admitted;
use super::context::ConnectionContext;
use super::dispatch::{dispatch, Dispatch};
use super::frame_reader::{FrameReader, ReadError};
use super::metrics::{self, ConnectionGauge, Rejected};
use super::outbound::{CountingWrite, Outbox, Unsent};
use super::warn_limit::WarnLimit;
use crate::protocol::{Codec, Frame, FrameError, Kind, Status};
use crate::transport::{Flush, FrameWriter};

/// Far enough to stand for "never" in a timer.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

static BAD_FRAME: WarnLimit = WarnLimit::new();
static STALLED: WarnLimit = WarnLimit::new();

/// Why the read loop ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Drained (goaway sent and no call left), idle, or forced: nothing left to answer.
    Done,
    /// The peer hung up, broke the framing, or stopped reading: abandon its calls.
    PeerGone,
}

/// Serves one connection from its read and write halves: a plain socket's own halves, or a
/// TLS stream's, so the plain path has no TLS layer and no boxing.
pub(crate) async fn serve_connection<R, W>(
    (read, write): (R, W),
    peer: SocketAddr,
    peer_name: Option<Arc<str>>,
    context: Arc<ConnectionContext>,
    admitted: Admitted,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let _served = ConnectionGauge::start();
    let unsent = Unsent::new(context.max_unsent, Arc::clone(&context.unsent_total));
    let writer_done = CancellationToken::new();
    let writer = FrameWriter::spawn(
        CountingWrite::new(write, Arc::clone(&unsent)),
        writer_done.clone(),
        Flush::AtOnce,
    );
    let outbox = Arc::new(Outbox { writer, unsent });
    let reader = FrameReader::new(
        read,
        context.max_frame,
        Arc::clone(&context.partial_budget),
        context.frame_timeout,
    );
    let in_flight = Arc::clone(&admitted.slot.in_flight);
    let connection = Connection {
        context: &context,
        peer,
        peer_name: peer_name.as_ref(),
        outbox: &outbox,
        writer_done: &writer_done,
        admitted: &admitted,
    };
    let end = connection.run(reader).await;
    // Whatever still runs has nobody to answer (peer gone) or ran out of grace (forced).
    in_flight.abort_all();
    // The place is free at once; flushing what is queued needs none.
    drop(admitted);
    if end == End::PeerGone {
        tracing::debug!(%peer, "peer gone; its calls were cancelled");
    }
    outbox.writer.close();
    // A peer that does not read cannot hold the connection open past the frame timeout.
    if tokio::time::timeout(context.frame_timeout, outbox.writer.closed())
        .await
        .is_err()
    {
        // Stops the writer mid-write; dropping its half of the socket closes it.
        writer_done.cancel();
    }
}

struct Connection<'a> {
    context: &'a Arc<ConnectionContext>,
    peer: SocketAddr,
    /// The common name of the peer's verified client certificate (mutual TLS).
    peer_name: Option<&'a Arc<str>>,
    outbox: &'a Arc<Outbox>,
    writer_done: &'a CancellationToken,
    admitted: &'a Admitted,
}

impl Connection<'_> {
    async fn run<R: AsyncRead + Unpin>(&self, mut reader: FrameReader<R>) -> End {
        let context = self.context;
        let in_flight = &self.admitted.slot.in_flight;
        let reclaimed = &self.admitted.slot.reclaimed;
        let idle_timeout = context.idle_timeout.unwrap_or(NEVER);
        let idle = tokio::time::sleep(idle_timeout);
        tokio::pin!(idle);
        let mut going_away = false;
        // Since when the peer has been behind on its replies, if it is.
        let mut behind_since: Option<tokio::time::Instant> = None;
        loop {
            // A peer behind on its replies is not read until it catches up.
            let behind = self.outbox.unsent.over_bound();
            behind_since = match (behind, behind_since) {
                (false, _) => None,
                (true, since) => Some(since.unwrap_or_else(tokio::time::Instant::now)),
            };
            let stalled_at = behind_since.map(|since| since + context.frame_timeout);
            // An async block, so that no timer is made unless the peer is behind.
            let stalled = async {
                match stalled_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                next = reader.next(), if !behind => next,
                _ = self.outbox.unsent.drained(), if behind => continue,
                _ = stalled, if behind => {
                    if let Some(suppressed) = STALLED.allow() {
                        tracing::warn!(peer = %self.peer, timeout = ?context.frame_timeout, suppressed, "peer does not read its replies; closing the connection");
                    }
                    return End::PeerGone;
                }
                _ = context.stop.cancelled(), if !going_away => {
                    going_away = true;
                    self.outbox.send(&Frame::control(Kind::GoAway, 0));
                    continue;
                }
                _ = reclaimed.cancelled(), if !going_away => {
                    tracing::debug!(peer = %self.peer, "idle connection reclaimed for a newcomer");
                    going_away = true;
                    self.outbox.send(&Frame::control(Kind::GoAway, 0));
                    continue;
                }
                _ = in_flight.idle(), if going_away => return End::Done,
                _ = context.force.cancelled() => return End::Done,
                _ = self.writer_done.cancelled() => return End::PeerGone,
                _ = &mut idle => {
                    let quiet = self.admitted.quiet_for();
                    if in_flight.is_idle() && quiet >= idle_timeout {
                        tracing::debug!(peer = %self.peer, "closing idle connection");
                        return End::Done;
                    }
                    // Calls in flight: look again a whole timeout later, not in a tight loop.
                    let wait = if in_flight.is_idle() {
                        idle_timeout.saturating_sub(quiet).max(Duration::from_millis(1))
                    } else {
                        idle_timeout
                    };
                    idle.as_mut().reset(tokio::time::Instant::now() + wait);
                    continue;
                }
            };
            let frame = match next {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    self.reject_framing(&e);
                    return End::PeerGone;
                }
                None => return End::PeerGone,
            };
            // Every frame this read brought is handled before selecting again, with one clock
            // reading for all of them.
            let arrived = std::time::Instant::now();
            self.admitted.touch(arrived);
            let mut next = Some(frame);
            while let Some(frame) = next {
                self.handle(frame, arrived, going_away);
                if self.outbox.unsent.over_bound() {
                    break;
                }
                next = match reader.buffered() {
                    Some(Ok(frame)) => Some(frame),
                    Some(Err(e)) => {
                        self.reject_framing(&e);
                        return End::PeerGone;
                    }
                    None => None,
                };
            }
        }
    }

    /// Handles one frame from the peer that arrived at `arrived`.
    fn handle(&self, frame: Frame, arrived: std::time::Instant, going_away: bool) {
        let in_flight = &self.admitted.slot.in_flight;
        match frame.kind {
            Kind::Request => dispatch(
                frame,
                Dispatch {
                    context: self.context,
                    outbox: self.outbox,
                    in_flight,
                    peer: self.peer,
                    peer_name: self.peer_name,
                    going_away,
                    arrived,
                },
            ),
            Kind::Ping => self.outbox.send(&Frame::control(Kind::Pong, frame.id)),
            Kind::Cancel => in_flight.cancel(frame.id),
            Kind::GoAway | Kind::Pong | Kind::Response => {}
        }
    }

    /// Answers a frame that cannot be parsed with a best-effort bad-request response; the
    /// caller then closes the connection, since the byte stream can no longer be trusted.
    fn reject_framing(&self, error: &ReadError) {
        let peer = self.peer;
        match error {
            ReadError::Frame(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "connection read failed")
            }
            ReadError::Frame(FrameError::Truncated { .. }) => {
                tracing::debug!(%peer, error = %error, "peer hung up mid-frame")
            }
            ReadError::TlsOnPlainPort => {
                if let Some(suppressed) = BAD_FRAME.allow() {
                    tracing::warn!(%peer, suppressed, "a TLS client reached this plaintext port; closing connection (serve TLS with server.tls.cert / server.tls.key)");
                }
                self.outbox.send(&Frame::error(
                    0,
                    Codec::Bincode,
                    Status::BadRequest,
                    "this port serves plaintext, not TLS",
                ));
            }
            ReadError::TimedOut { .. } => {
                if let Some(suppressed) = BAD_FRAME.allow() {
                    tracing::warn!(%peer, error = %error, suppressed, "frame not completed in time; closing connection");
                }
            }
            ReadError::Frame(e) => {
                if matches!(e, FrameError::TooLarge { .. }) {
                    metrics::rejected(Rejected::TooLarge);
                }
                if let Some(suppressed) = BAD_FRAME.allow() {
                    tracing::warn!(%peer, error = %error, suppressed, "malformed frame; closing connection");
                }
                let message = format!("malformed frame: {error}");
                self.outbox.send(&Frame::error(
                    0,
                    Codec::Bincode,
                    Status::BadRequest,
                    &message,
                ));
            }
        }
    }
}
