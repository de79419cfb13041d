//! A coalescing frame writer: callers append encoded frames to a shared buffer, and one task
//! writes whatever has piled up with a single `write_all`. Under concurrency many frames go out
//! per syscall; when idle, a frame goes out as soon as the task wakes.
//!
//! A large body is not copied into the buffer: the frames before it and its header are cut
//! off the buffer as one segment, the body follows as another, and the task writes the
//! segments with one vectored write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, Bytes, BytesMut};
use bytes_utils::SegmentedBuf;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::{Frame, FrameError};

/// Cheap to clone; all clones feed the same socket.
#[derive(Clone)]
pub(crate) struct FrameWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    /// A wake-up is already on its way; senders need not notify again.
    scheduled: AtomicBool,
    /// Cancelled when the socket fails or the writer is closed and flushed.
    done: CancellationToken,
    /// The socket takes vectored writes, so a large body may go out from its own buffer
    /// (otherwise it would cost a write of its own).
    vectored: bool,
}

struct State {
    /// Frames queued after the last segment.
    buf: BytesMut,
    /// Frames queued before `buf`, in order, when a large body is among them.
    segments: SegmentedBuf<Bytes>,
    closing: bool,
}

/// A body this large goes out from its own buffer: copying it costs more than one more
/// slice in a vectored write.
const SEPARATE_BODY: usize = 4 * 1024;

/// When the writing task writes what has piled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// After yielding once: frames come from many tasks (a client's callers), and whoever
    /// woke the writer is still running, so every task that is ready queues its frame first
    /// and one write carries them all.
    AfterYield,
    /// As soon as the task runs: frames come mostly from one task that queues a whole
    /// batch before the writer can run (a server connection answering the requests of one
    /// read). Yielding there only costs a scheduler round and a driver poll per write
    /// (measured: about half the server's CPU per call at 16 callers).
    AtOnce,
}

/// The writer no longer accepts frames: the connection is closing or broken.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterClosed;

impl FrameWriter {
    /// Starts the writing task on `io`. `done` is cancelled when the task ends for any reason.
    pub(crate) fn spawn<W>(io: W, done: CancellationToken, flush: Flush) -> FrameWriter
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: BytesMut::with_capacity(8 * 1024),
                segments: SegmentedBuf::new(),
                closing: false,
            }),
            wake: Notify::new(),
            scheduled: AtomicBool::new(false),
            done,
            vectored: io.is_write_vectored(),
        });
        tokio::spawn(run(io, Arc::clone(&shared), flush));
        FrameWriter { shared }
    }

    /// Queues one frame. Encoding happens here, on the caller's task.
    pub(crate) fn send(&self, frame: &Frame) -> Result<(), WriterClosed> {
        {
            let mut state = self.shared.lock();
            // `closing` is also set when the writing task ends for any reason, so this needs
            // no look at the cancellation token (which takes a lock).
            if state.closing {
                return Err(WriterClosed);
            }
            let state = &mut *state;
            let encoded = if frame.body.len() < SEPARATE_BODY || !self.shared.vectored {
                frame.encode(&mut state.buf)
            } else {
                frame.encode_head(&mut state.buf, 0).map(|()| {
                    state.segments.push(state.buf.split().freeze());
                    state.segments.push(frame.body.clone());
                })
            };
            if let Err(FrameError::NameTooLong { .. } | FrameError::TooLarge { .. }) = encoded {
                // Nothing was written for a frame that cannot be encoded.
                return Err(WriterClosed);
            }
        }
        if !self.shared.scheduled.swap(true, Ordering::AcqRel) {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Stops accepting frames; what is queued is still written, then the socket is shut down.
    pub(crate) fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }

    /// Resolves once the writer has flushed and shut down, or failed.
    pub(crate) async fn closed(&self) {
        self.shared.done.cancelled().await
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the buffer half-updated in a way that
        // matters more than losing the connection, so recover from poisoning.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

async fn run<W: AsyncWrite + Unpin>(io: W, shared: Arc<Shared>, flush: Flush) {
    write_until_done(io, &shared, flush).await;
    // Whatever ended the task, no frame may be queued any more.
    shared.lock().closing = true;
    shared.done.cancel();
}

/// Writes queued frames until the writer is closed and drained, a write fails, or `done` is
/// cancelled.
async fn write_until_done<W: AsyncWrite + Unpin>(mut io: W, shared: &Shared, flush: Flush) {
    let mut spare = BytesMut::with_capacity(8 * 1024);
    let mut segments = SegmentedBuf::new();
    loop {
        if flush == Flush::AfterYield {
            tokio::task::yield_now().await;
        }
        // From here on a new frame needs a new wake-up.
        shared.scheduled.store(false, Ordering::Release);
        let closing = {
            let mut state = shared.lock();
            // Swapped, not taken: each side keeps its queue's allocation.
            std::mem::swap(&mut state.segments, &mut segments);
            if segments.remaining() > 0 && !state.buf.is_empty() {
                segments.push(state.buf.split().freeze());
            } else if !state.buf.is_empty() {
                std::mem::swap(&mut state.buf, &mut spare);
            }
            state.closing
        };
        if spare.is_empty() && segments.remaining() == 0 {
            if closing {
                break;
            }
            tokio::select! {
                _ = shared.wake.notified() => continue,
                _ = shared.done.cancelled() => return,
            }
        }
        let written = tokio::select! {
            r = async {
                if segments.remaining() > 0 {
                    io.write_all_buf(&mut segments).await
                } else {
                    io.write_all(&spare).await
                }
            } => r,
            _ = shared.done.cancelled() => return,
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "connection write failed");
            return;
        }
        spare.clear();
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    /// Counts write calls and bytes.
    #[derive(Clone, Default)]
    struct Counting {
        writes: Arc<AtomicUsize>,
        bytes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.bytes.fetch_add(buf.len(), Ordering::SeqCst);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_frames_coalesce_into_few_writes() {
        let io = Counting::default();
        let done = CancellationToken::new();
        let writer = FrameWriter::spawn(io.clone(), done.clone(), Flush::AfterYield);
        // On a current-thread runtime the writer task cannot run until we yield, so all 100
        // frames pile up first, as they do when many calls are issued at once.
        let frame = Frame::control(crate::protocol::Kind::Ping, 1);
        for _ in 0..100 {
            writer.send(&frame).unwrap();
        }
        writer.close();
        done.cancelled().await;
        assert_eq!(
            io.bytes.load(Ordering::SeqCst),
            100 * (4 + frame.encoded_len())
        );
        assert_eq!(
            io.writes.load(Ordering::SeqCst),
            1,
            "100 queued frames should go out in one write"
        );
    }

    /// Records every byte written and the address of every slice handed to it, like a
    /// socket that takes vectored writes.
    #[derive(Clone, Default)]
    struct Recording {
        bytes: Arc<Mutex<Vec<u8>>>,
        slices: Arc<Mutex<Vec<usize>>>,
    }

    impl AsyncWrite for Recording {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut written = 0;
            for buf in bufs {
                self.slices.lock().unwrap().push(buf.as_ptr() as usize);
                self.bytes.lock().unwrap().extend_from_slice(buf);
                written += buf.len();
            }
            Poll::Ready(Ok(written))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn frame_with_body(id: u64, body: Bytes) -> Frame {
        let mut frame = Frame::control(crate::protocol::Kind::Response, id);
        frame.body = body;
        frame
    }

    /// A large body reaches the socket from its own buffer, not copied into the writer's;
    /// the frames around it keep their order and bytes.
    #[tokio::test(flavor = "current_thread")]
    async fn a_large_body_goes_out_from_its_own_buffer_in_order() {
        let io = Recording::default();
        let done = CancellationToken::new();
        let writer = FrameWriter::spawn(io.clone(), done.clone(), Flush::AfterYield);
        let large = Bytes::from(vec![7u8; SEPARATE_BODY * 4]);
        let frames = [
            frame_with_body(1, Bytes::from_static(b"small before")),
            frame_with_body(2, large.clone()),
            frame_with_body(3, Bytes::from_static(b"small after")),
        ];
        let mut expected = BytesMut::new();
        for frame in &frames {
            writer.send(frame).unwrap();
            frame.encode(&mut expected).unwrap();
        }
        writer.close();
        done.cancelled().await;
        assert_eq!(&io.bytes.lock().unwrap()[..], &expected[..]);
        assert!(
            io.slices
                .lock()
                .unwrap()
                .contains(&(large.as_ptr() as usize)),
            "the large body was copied instead of written from its own buffer"
        );
    }
}
