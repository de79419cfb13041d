//! Back-pressure on replies: the bytes a connection has queued but not yet written, counted
//! as they are queued and as the socket takes them, so the connection can stop reading
//! requests while its peer is not reading replies.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use crate::protocol::Frame;
use crate::transport::FrameWriter;

/// Where a connection's frames go: the writer, with every frame counted as unsent until the
/// socket takes it.
pub(crate) struct Outbox {
    pub(crate) writer: FrameWriter,
    pub(crate) unsent: Arc<Unsent>,
}

impl Outbox {
    /// Queues `frame`; dropped silently when the connection is already closing.
    pub(crate) fn send(&self, frame: &Frame) {
        let n = 4 + frame.encoded_len();
        // Counted before it is queued, so the socket can never take it before it is counted.
        self.unsent.queued(n);
        if self.writer.send(frame).is_err() {
            self.unsent.written(n);
        }
    }
}

/// The unsent reply bytes of one connection.
pub(crate) struct Unsent {
    bytes: AtomicUsize,
    /// Above this the connection stops reading.
    bound: usize,
    /// Notified when the count falls to the bound or below.
    drained: Notify,
    /// The server-wide total, for [`ServerStats`](super::ServerStats).
    total: Arc<AtomicUsize>,
}

impl Unsent {
    pub(crate) fn new(bound: usize, total: Arc<AtomicUsize>) -> Arc<Unsent> {
        Arc::new(Unsent {
            bytes: AtomicUsize::new(0),
            bound,
            drained: Notify::new(),
            total,
        })
    }

    /// Counts `n` bytes just queued for the socket.
    pub(crate) fn queued(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::AcqRel);
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether the peer is behind: more than the bound is waiting for it.
    pub(crate) fn over_bound(&self) -> bool {
        self.bytes.load(Ordering::Acquire) > self.bound
    }

    /// Resolves once no more than the bound is waiting.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if !self.over_bound() {
                return;
            }
            notified.await;
        }
    }

    fn written(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        self.total.fetch_sub(n, Ordering::Relaxed);
        if before > self.bound && before - n <= self.bound {
            self.drained.notify_waiters();
        }
    }
}

impl Drop for Unsent {
    fn drop(&mut self) {
        // Whatever was never written leaves the server-wide count with the connection.
        self.total
            .fetch_sub(*self.bytes.get_mut(), Ordering::Relaxed);
    }
}

/// The socket's write half, counting off bytes as the socket takes them.
pub(crate) struct CountingWrite<W> {
    inner: W,
    unsent: Arc<Unsent>,
}

impl<W> CountingWrite<W> {
    pub(crate) fn new(inner: W, unsent: Arc<Unsent>) -> CountingWrite<W> {
        CountingWrite { inner, unsent }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWrite<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.unsent.written(n);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.unsent.written(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_down_as_the_socket_takes_bytes_and_wakes_at_the_bound() {
        let total = Arc::new(AtomicUsize::new(0));
        let unsent = Unsent::new(100, Arc::clone(&total));
        let (client, mut server) = tokio::io::duplex(64);
        let mut write = CountingWrite::new(client, Arc::clone(&unsent));
        unsent.queued(300);
        assert!(unsent.over_bound());
        assert_eq!(total.load(Ordering::Relaxed), 300);
        let writer = tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut write, &[0u8; 300]).await
        });
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut sink).await
        });
        tokio::time::timeout(std::time::Duration::from_secs(5), unsent.drained())
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(total.load(Ordering::Relaxed), 0);
        drop(reader);
    }
}
