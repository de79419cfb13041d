//! When a connection last heard from its provider, counted in bytes rather than frames: a
//! large reply still arriving is not silence. And how long it lived, to tell a connection
//! refused at accept (closed at once, unheard) from one that worked.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;

/// Timestamps of one connection, as nanoseconds after it opened (0 = not yet).
pub(super) struct Liveness {
    opened: Instant,
    heard_nanos: AtomicU64,
    closed_nanos: AtomicU64,
}

impl Liveness {
    pub(super) fn new() -> Liveness {
        Liveness {
            opened: Instant::now(),
            heard_nanos: AtomicU64::new(0),
            closed_nanos: AtomicU64::new(0),
        }
    }

    /// Nanoseconds since opening, never 0 (which means "not yet").
    fn since_opened(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Notes that bytes arrived.
    pub(super) fn heard(&self) {
        self.heard_nanos
            .store(self.since_opened(), Ordering::Relaxed);
    }

    /// Notes that the connection closed (the first time counts).
    pub(super) fn closed(&self) {
        let _ = self.closed_nanos.compare_exchange(
            0,
            self.since_opened(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Whether the connection has closed: a load, where asking the connection's
    /// cancellation token takes a lock, and every call asks.
    pub(super) fn is_closed(&self) -> bool {
        self.closed_nanos.load(Ordering::Relaxed) != 0
    }

    /// When bytes last arrived (the opening time before the first).
    pub(super) fn last_heard(&self) -> Instant {
        self.opened + Duration::from_nanos(self.heard_nanos.load(Ordering::Relaxed))
    }

    /// Whether any byte ever came from the provider.
    pub(super) fn heard_anything(&self) -> bool {
        self.heard_nanos.load(Ordering::Relaxed) != 0
    }

    /// Whether the connection closed within `within` of opening without a byte from the
    /// provider.
    pub(super) fn ended_unheard_within(&self, within: Duration) -> bool {
        let closed = self.closed_nanos.load(Ordering::Relaxed);
        !self.heard_anything() && closed != 0 && Duration::from_nanos(closed) <= within
    }
}

/// A reader that notes every read that brings bytes, and keeps the first two bytes ever
/// read (a plaintext connection tells from them that the provider answered with TLS).
pub(super) struct HeardReader<R> {
    inner: R,
    liveness: Arc<Liveness>,
    first: [u8; 2],
    kept: usize,
}

impl<R> HeardReader<R> {
    pub(super) fn new(inner: R, liveness: Arc<Liveness>) -> HeardReader<R> {
        HeardReader {
            inner,
            liveness,
            first: [0; 2],
            kept: 0,
        }
    }

    /// The first two bytes read, once two have arrived.
    pub(super) fn first_bytes(&self) -> Option<[u8; 2]> {
        (self.kept == 2).then_some(self.first)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HeardReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.liveness.heard();
            if self.kept < 2 {
                let this = &mut *self;
                for &byte in buf.filled()[before..].iter().take(2 - this.kept) {
                    this.first[this.kept] = byte;
                    this.kept += 1;
                }
            }
        }
        polled
    }
}
