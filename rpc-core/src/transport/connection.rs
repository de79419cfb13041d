//! One multiplexed TCP connection to a provider: many calls in flight, matched by request id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::FrameWriter;
use crate::call::Call;
use crate::protocol::{Frame, FrameCodec, FrameError, Kind};
use crate::{RpcError, Status};

type Reply = Result<Frame, RpcError>;

/// A handle to one connection; clones share it.
#[derive(Clone)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    writer: FrameWriter,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Set by a goaway: calls in flight finish, new calls go elsewhere.
    going_away: AtomicBool,
    /// Cancelled when the connection is finished for any reason.
    closed: CancellationToken,
}

struct Pending {
    calls: HashMap<u64, oneshot::Sender<Reply>>,
    /// Why the connection closed; once set, no call may be added.
    closed: Option<String>,
}

impl Connection {
    /// Opens a connection and starts its reader and writer tasks.
    pub(crate) async fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
        max_frame: usize,
    ) -> Result<Connection, RpcError> {
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(RpcError::connect(addr, e)),
            Err(_) => {
                return Err(RpcError::connect(
                    addr,
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {connect_timeout:?}"),
                    ),
                ))
            }
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let closed = CancellationToken::new();
        let writer = FrameWriter::spawn(write, closed.child_token());
        let shared = Arc::new(Shared {
            addr,
            writer,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending {
                calls: HashMap::new(),
                closed: None,
            }),
            going_away: AtomicBool::new(false),
            closed,
        });
        tokio::spawn(read_loop(
            FramedRead::new(read, FrameCodec::new(max_frame)),
            Arc::clone(&shared),
        ));
        Ok(Connection { shared })
    }

    /// The provider's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Whether new calls may use this connection.
    pub(crate) fn is_usable(&self) -> bool {
        !self.shared.going_away.load(Ordering::Acquire) && !self.shared.closed.is_cancelled()
    }

    /// Sends `call` and waits for its reply body; a status other than ok becomes
    /// [`RpcError::Status`]. Dropping the future cancels the call: the pending entry goes and a
    /// cancel frame tells the server.
    pub(crate) async fn send(&self, call: &Call) -> Result<Bytes, RpcError> {
        let frame = Frame {
            kind: Kind::Request,
            codec: call.codec,
            status: Status::Ok,
            flags: 0,
            id: 0,
            deadline_ms: call.deadline.to_wire_ms(),
            service: call.service_key.clone(),
            method: call.method_name.clone(),
            metadata: Bytes::new(),
            body: call.body.clone(),
        };
        let reply = self.exchange(frame).await?;
        if reply.status == Status::Ok {
            Ok(reply.body)
        } else {
            Err(RpcError::Status {
                status: reply.status,
                message: String::from_utf8_lossy(&reply.body).into_owned(),
                service: call.service_key.to_string(),
                method: call.method_name.to_string(),
                addr: self.addr(),
            })
        }
    }

    /// Sends a ping and waits for the pong.
    pub(crate) async fn ping(&self) -> Result<Duration, RpcError> {
        let started = Instant::now();
        self.exchange(Frame::control(Kind::Ping, 0)).await?;
        Ok(started.elapsed())
    }

    async fn exchange(&self, mut frame: Frame) -> Reply {
        if self.shared.going_away.load(Ordering::Acquire) {
            return Err(RpcError::GoAway {
                addr: self.shared.addr,
            });
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        frame.id = id;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.lock_pending();
            if let Some(reason) = &pending.closed {
                return Err(self.shared.lost(reason));
            }
            pending.calls.insert(id, tx);
        }
        let mut guard = InFlight {
            shared: &self.shared,
            id,
            done: false,
        };
        if self.shared.writer.send(&frame).is_err() {
            guard.done = true;
            self.shared.lock_pending().calls.remove(&id);
            return Err(self.shared.lost("the connection is closing"));
        }
        let reply = rx.await;
        guard.done = true;
        match reply {
            Ok(reply) => reply,
            Err(_) => Err(self.shared.lost("the connection closed")),
        }
    }
}

/// Removes a call's pending entry if its future is dropped early, and tells the server.
struct InFlight<'a> {
    shared: &'a Shared,
    id: u64,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let was_pending = self.shared.lock_pending().calls.remove(&self.id).is_some();
        if was_pending {
            let _ = self
                .shared
                .writer
                .send(&Frame::control(Kind::Cancel, self.id));
        }
    }
}

impl Shared {
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn lost(&self, reason: &str) -> RpcError {
        RpcError::ConnectionLost {
            addr: self.addr,
            reason: reason.to_string(),
        }
    }

    /// Marks the connection closed and fails every pending call at once.
    fn close(&self, reason: String) {
        let calls = {
            let mut pending = self.lock_pending();
            if pending.closed.is_none() {
                pending.closed = Some(reason.clone());
            }
            std::mem::take(&mut pending.calls)
        };
        for (_, tx) in calls {
            let _ = tx.send(Err(self.lost(&reason)));
        }
        self.writer.close();
        self.closed.cancel();
    }
}

async fn read_loop(
    mut frames: FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    shared: Arc<Shared>,
) {
    let reason = loop {
        let next = tokio::select! {
            next = frames.next() => next,
            _ = shared.closed.cancelled() => break "the connection was closed".to_string(),
        };
        let frame = match next {
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Io(e))) => {
                tracing::info!(peer = %shared.addr, error = %e, "connection to provider lost");
                break format!("connection error: {e}");
            }
            Some(Err(e)) => {
                tracing::warn!(peer = %shared.addr, error = %e, "bad frame from server; closing connection");
                break format!("bad frame from server: {e}");
            }
            None => break "the server closed the connection".to_string(),
        };
        match frame.kind {
            Kind::Response | Kind::Pong => {
                let tx = shared.lock_pending().calls.remove(&frame.id);
                if let Some(tx) = tx {
                    let _ = tx.send(Ok(frame));
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
            break "the server sent goaway and every call has finished".to_string();
        }
    };
    shared.close(reason);
}
