//! Reading frames on the server, with memory bounded server-wide: a frame larger than
//! [`UNCHARGED_FRAME`] is buffered only once its whole length is reserved from the server's
//! budget for partially received frames (until then the connection is not read), and a frame
//! that has started must complete within the frame timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::protocol::{Frame, FrameCodec, FrameError};

/// Frames up to this size, length prefix included, are read without charging the server-wide
/// budget: every connection may hold one in its read buffer.
pub(crate) const UNCHARGED_FRAME: usize = 16 * 1024;
/// Room the read buffer keeps for one socket read.
const READ_CHUNK: usize = 8 * 1024;

/// Why no frame could be read. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// Broken framing, a socket error, or the peer hung up mid-frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection opened with a TLS record (a ClientHello) on a plaintext port.
    #[error("a TLS handshake arrived on a plaintext port")]
    TlsOnPlainPort,
    /// A frame started but did not complete in time.
    #[error(
        "a frame of {expected} bytes was not complete after {timeout:?} ({buffered} bytes arrived)"
    )]
    TimedOut {
        /// Its length, prefix included, when known.
        expected: usize,
        /// Bytes of it that arrived.
        buffered: usize,
        /// The frame timeout.
        timeout: Duration,
    },
}

/// What a reader's buffer holds.
enum Buffered {
    /// A whole frame, now taken out of the buffer.
    Frame(Frame),
    /// A frame that cannot be read.
    Bad(FrameError),
    /// Part of a frame: its length, prefix included, once the prefix has arrived.
    Partial(Option<usize>),
}

/// The server-wide budget of bytes of partially received frames.
pub(crate) type PartialBudget = Arc<Semaphore>;

/// Reads frames from one connection.
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    codec: FrameCodec,
    budget: PartialBudget,
    /// The reservation of the frame in progress, when it is over [`UNCHARGED_FRAME`].
    reserved: Option<OwnedSemaphorePermit>,
    /// When the frame in progress must be complete.
    due: Option<Instant>,
    timeout: Duration,
    /// No frame was read yet.
    first_frame: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R, max_frame: usize, budget: PartialBudget, timeout: Duration) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            codec: FrameCodec::new(max_frame),
            budget,
            reserved: None,
            due: None,
            timeout,
            first_frame: true,
        }
    }

    /// The next frame; `None` when the peer closed the connection between frames.
    ///
    /// Cancel-safe: what was read or reserved stays with the reader.
    pub(crate) async fn next(&mut self) -> Option<Result<Frame, ReadError>> {
        loop {
            let expected = match self.take_buffered() {
                Ok(frame) => return Some(frame),
                Err(expected) => expected,
            };
            if !self.buf.is_empty() && self.due.is_none() {
                self.due = Some(Instant::now() + self.timeout);
            }
            if let Some(expected) = expected {
                if let Err(e) = self.reserve(expected).await {
                    return Some(Err(e));
                }
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            let read = match self.due {
                None => self.io.read_buf(&mut self.buf).await,
                Some(due) => {
                    match tokio::time::timeout_at(due, self.io.read_buf(&mut self.buf)).await {
                        Ok(read) => read,
                        Err(_) => return Some(Err(self.timed_out(expected))),
                    }
                }
            };
            match read {
                Ok(0) if self.buf.is_empty() => return None,
                Ok(0) => {
                    return Some(Err(ReadError::Frame(FrameError::Truncated {
                        buffered: self.buf.len(),
                    })))
                }
                Ok(_) => {}
                Err(e) => return Some(Err(ReadError::Frame(FrameError::Io(e)))),
            }
        }
    }

    /// The next frame if the buffer already holds all of it (or a framing error), without
    /// reading: the frames one socket read brought are handled in one go.
    pub(crate) fn buffered(&mut self) -> Option<Result<Frame, ReadError>> {
        self.take_buffered().ok()
    }

    /// A whole frame (or a framing error) taken from the buffer, or the length of the
    /// partial frame there (`None` until its prefix has arrived).
    fn take_buffered(&mut self) -> Result<Result<Frame, ReadError>, Option<usize>> {
        match self.next_len() {
            Buffered::Frame(frame) => {
                self.first_frame = false;
                self.reserved = None;
                self.due = None;
                Ok(Ok(frame))
            }
            Buffered::Bad(_) if self.opens_with_tls() => Ok(Err(ReadError::TlsOnPlainPort)),
            Buffered::Bad(e) => Ok(Err(e.into())),
            Buffered::Partial(expected) => Err(expected),
        }
    }

    /// Whether nothing was read before and the buffer opens with a TLS handshake record
    /// (0x16 0x03): a TLS client on a plaintext port. Checked only once framing broke.
    fn opens_with_tls(&self) -> bool {
        self.first_frame && self.buf.starts_with(&[0x16, 0x03])
    }

    /// What the buffer holds: a whole frame, a bad one, or part of one.
    fn next_len(&mut self) -> Buffered {
        if self.buf.len() < 4 {
            return Buffered::Partial(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = len as usize;
        if len <= self.codec.max_frame() && self.buf.len() < 4 + len {
            return Buffered::Partial(Some(4 + len));
        }
        // A whole frame, or a length the codec refuses before buffering anything.
        match self.codec.decode(&mut self.buf) {
            Ok(Some(frame)) => Buffered::Frame(frame),
            Ok(None) => Buffered::Partial(Some(4 + len)),
            Err(e) => Buffered::Bad(e),
        }
    }

    /// Makes room for a frame of `expected` bytes, first reserving it from the server-wide
    /// budget if it is over [`UNCHARGED_FRAME`]; waits (not reading) until the budget has it.
    async fn reserve(&mut self, expected: usize) -> Result<(), ReadError> {
        if expected > UNCHARGED_FRAME && self.reserved.is_none() {
            let permits = u32::try_from(expected).unwrap_or(u32::MAX);
            let acquire = Arc::clone(&self.budget).acquire_many_owned(permits);
            let due = self.due.unwrap_or_else(|| Instant::now() + self.timeout);
            match tokio::time::timeout_at(due, acquire).await {
                Ok(Ok(permit)) => self.reserved = Some(permit),
                // The budget is never closed; treat it like no budget in time.
                Ok(Err(_)) | Err(_) => return Err(self.timed_out(Some(expected))),
            }
        }
        if self.buf.capacity() < expected {
            self.buf.reserve(expected - self.buf.len());
        }
        Ok(())
    }

    fn timed_out(&self, expected: Option<usize>) -> ReadError {
        ReadError::TimedOut {
            expected: expected.unwrap_or(0),
            buffered: self.buf.len(),
            timeout: self.timeout,
        }
    }
}
