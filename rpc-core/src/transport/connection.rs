//! One multiplexed TCP connection to a provider: many calls in flight, matched by request id.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::expiry::Waiting;
use super::liveness::{HeardReader, Liveness};
use super::request::{check_size, request_frame};
use super::settings::Settings;
use super::tls::TlsConnect;
use super::{health, Flush, FrameWriter};
use crate::call::{Call, Deadline};
use crate::protocol::{Frame, FrameCodec, Kind, Metadata, MetadataLimits};
use crate::{RpcError, Status};

type Reply = Result<Frame, RpcError>;

/// The read buffer's starting size: room for several replies of a few KiB, so a reply that
/// arrives over several reads rarely makes the buffer grow (and copy what it holds).
const READ_BUFFER: usize = 64 * 1024;

/// A handle to one connection; clones share it.
#[derive(Clone)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
}

/// What the connection's handles and its reader and health tasks share.
pub(super) struct Shared {
    pub(super) addr: SocketAddr,
    pub(super) writer: FrameWriter,
    pub(super) settings: Settings,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Set by a goaway: calls in flight finish, new calls go elsewhere.
    pub(super) going_away: AtomicBool,
    /// Cancelled when the connection is finished for any reason.
    pub(super) closed: CancellationToken,
    /// Woken when a call is added to an idle connection (the health task waits on it).
    pub(super) busy: Notify,
    /// Woken when a call's deadline comes before any the expiry task waits for.
    pub(super) sooner_deadline: Notify,
    /// When bytes last came from the provider, and when the connection closed.
    pub(super) liveness: Arc<Liveness>,
}

pub(super) struct Pending {
    /// By request id. The ids are this client's own, so a fast hasher is safe.
    pub(super) calls: HashMap<u64, Waiting, foldhash::fast::RandomState>,
    /// When the expiry task looks at the calls' deadlines next: no later than the earliest.
    pub(super) next_expiry: Option<std::time::Instant>,
    /// Why the connection closed; once set, no call may be added.
    closed: Option<String>,
}

/// Why a connection was closed, for the error its pending calls get.
pub(super) enum Closing {
    /// The socket ended, broke, or the client closed it.
    Lost(String),
    /// Calls were in flight and the provider answered nothing for this long.
    Silent(Duration),
    /// The TLS layer failed, or a plain connection got TLS back.
    Tls(String),
}

impl Connection {
    /// Opens a connection (with TLS when `tls` is given, the handshake within the same
    /// connect timeout) and starts its reader and writer tasks.
    pub(crate) async fn connect(
        addr: SocketAddr,
        settings: &Settings,
        tls: Option<&TlsConnect>,
    ) -> Result<Connection, RpcError> {
        let connect_timeout = settings.connect_timeout;
        let opened = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| RpcError::connect(addr, e))?;
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    let (read, write) = stream.into_split();
                    Ok(Connection::start(addr, settings, read, write, false))
                }
                Some(tls) => {
                    let stream = tls.handshake(addr, stream).await?;
                    let (read, write) = tokio::io::split(stream);
                    Ok(Connection::start(addr, settings, read, write, true))
                }
            }
        };
        match tokio::time::timeout(connect_timeout, opened).await {
            Ok(opened) => opened,
            Err(_) => Err(RpcError::connect(
                addr,
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {connect_timeout:?}"),
                ),
            )),
        }
    }

    /// Starts the reader, writer and health tasks on an open stream's halves. Generic, so a
    /// plain connection reads and writes its socket halves with no TLS layer or boxing.
    fn start<R, W>(
        addr: SocketAddr,
        settings: &Settings,
        read: R,
        write: W,
        tls: bool,
    ) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let liveness = Arc::new(Liveness::new());
        let closed = CancellationToken::new();
        let writer = FrameWriter::spawn(write, closed.child_token(), Flush::AfterYield);
        let shared = Arc::new(Shared {
            addr,
            writer,
            settings: settings.clone(),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Pending {
                calls: HashMap::default(),
                next_expiry: None,
                closed: None,
            }),
            going_away: AtomicBool::new(false),
            closed,
            busy: Notify::new(),
            sooner_deadline: Notify::new(),
            liveness: Arc::clone(&liveness),
        });
        tokio::spawn(super::read_loop::run(
            FramedRead::with_capacity(
                HeardReader::new(read, liveness),
                FrameCodec::new(settings.max_frame),
                READ_BUFFER,
            ),
            Arc::clone(&shared),
            tls,
        ));
        tokio::spawn(health::watch(Arc::clone(&shared)));
        tokio::spawn(super::expiry::watch(Arc::clone(&shared)));
        Connection { shared }
    }

    /// The provider's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Whether new calls may use this connection.
    pub(crate) fn is_usable(&self) -> bool {
        !self.shared.going_away.load(Ordering::Acquire) && !self.shared.liveness.is_closed()
    }

    /// Whether any byte ever came from the provider on this connection.
    pub(crate) fn heard_anything(&self) -> bool {
        self.shared.liveness.heard_anything()
    }

    /// Whether the connection closed within `within` of opening without a single byte
    /// from the provider: what a server at its connection limit does (accept, then close).
    pub(crate) fn ended_unheard_within(&self, within: Duration) -> bool {
        self.shared.liveness.ended_unheard_within(within)
    }

    /// Closes the connection: pending calls fail, the socket is shut down, its tasks end.
    pub(crate) fn close(&self, reason: &str) {
        self.shared.close(Closing::Lost(reason.to_string()));
    }

    /// Sends `call` and waits for its reply body until the call's deadline; a status other
    /// than ok becomes [`RpcError::Status`]. A request over the frame limit is refused here,
    /// before anything is sent. Dropping the future, or the deadline passing, cancels the
    /// call: the pending entry goes and a cancel frame tells the server.
    pub(crate) async fn send(&self, call: &Call) -> Result<Bytes, RpcError> {
        // The frame is encoded and dropped before the wait, so the call's future keeps no
        // room for it.
        let sent = {
            let frame = request_frame(call);
            check_size(&frame, self.shared.settings.max_frame)?;
            self.queue(frame, call.deadline, call.budget)?
        };
        let reply = self.wait(sent).await?;
        if let Some(slot) = &call.reply_metadata {
            slot.set(reply_metadata(&reply, self.addr()));
        }
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
        let started = std::time::Instant::now();
        self.exchange(Frame::control(Kind::Ping, 0)).await?;
        Ok(started.elapsed())
    }

    async fn exchange(&self, frame: Frame) -> Reply {
        let sent = self.queue(frame, Deadline::NONE, Duration::MAX)?;
        self.wait(sent).await
    }

    /// Registers `frame` under a fresh request id and queues it: the reply will come
    /// through the returned receiver, or a [`RpcError::DeadlineExceeded`] naming `budget`
    /// once `deadline` passes.
    fn queue(
        &self,
        mut frame: Frame,
        deadline: Deadline,
        budget: Duration,
    ) -> Result<Sent, RpcError> {
        if self.shared.going_away.load(Ordering::Acquire) {
            return Err(RpcError::GoAway {
                addr: self.shared.addr,
            });
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        frame.id = id;
        let (tx, reply) = oneshot::channel();
        let expires = deadline.instant();
        let sooner = {
            let mut pending = self.shared.lock_pending();
            if let Some(reason) = &pending.closed {
                return Err(self.shared.lost(reason));
            }
            pending.calls.insert(
                id,
                Waiting {
                    reply: tx,
                    expires,
                    budget,
                },
            );
            if pending.calls.len() == 1 {
                self.shared.busy.notify_one();
            }
            // Deadlines mostly come in rising order, so the task is rarely woken here.
            let sooner = expires.is_some_and(|at| pending.next_expiry.is_none_or(|next| at < next));
            if sooner {
                pending.next_expiry = expires;
            }
            sooner
        };
        if sooner {
            self.shared.sooner_deadline.notify_one();
        }
        if self.shared.writer.send(&frame).is_err() {
            self.shared.lock_pending().calls.remove(&id);
            return Err(self.shared.lost("the connection is closing"));
        }
        Ok(Sent { id, reply })
    }

    /// Waits for the reply of a frame [`Connection::queue`] sent; dropped early, it takes
    /// the call's pending entry away and tells the server.
    async fn wait(&self, sent: Sent) -> Reply {
        let mut guard = InFlight {
            shared: &self.shared,
            id: sent.id,
            done: false,
        };
        let reply = sent.reply.await;
        guard.done = true;
        match reply {
            Ok(reply) => reply,
            Err(_) => Err(self.shared.lost("the connection closed")),
        }
    }
}

/// A request on the wire: its id, and where its reply will arrive.
struct Sent {
    id: u64,
    reply: oneshot::Receiver<Reply>,
}

/// The metadata a reply carries. A block that breaks the rules is dropped (logged at
/// debug): the reply itself is still good.
fn reply_metadata(reply: &Frame, addr: SocketAddr) -> Metadata {
    match Metadata::decode(&reply.metadata, &MetadataLimits::default()) {
        Ok(metadata) => metadata,
        Err(e) => {
            tracing::debug!(peer = %addr, error = %e, "ignoring bad reply metadata");
            Metadata::new()
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
    pub(super) fn lock_pending(&self) -> MutexGuard<'_, Pending> {
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

    /// Whether any call is waiting for its reply.
    pub(super) fn has_calls(&self) -> bool {
        !self.lock_pending().calls.is_empty()
    }

    /// When bytes last arrived (the opening time before the first).
    pub(super) fn last_heard(&self) -> Instant {
        self.liveness.last_heard()
    }

    /// Closes the connection because the provider stayed silent with calls in flight.
    pub(super) fn close_unresponsive(&self, silent_for: Duration) {
        self.close(Closing::Silent(silent_for));
    }

    /// Marks the connection closed and fails every pending call at once.
    pub(super) fn close(&self, why: Closing) {
        let reason = match &why {
            Closing::Lost(reason) | Closing::Tls(reason) => reason.clone(),
            Closing::Silent(silent_for) => {
                format!("the provider answered nothing for {silent_for:?}")
            }
        };
        let calls = {
            let mut pending = self.lock_pending();
            if pending.closed.is_none() {
                pending.closed = Some(reason.clone());
                self.liveness.closed();
            }
            std::mem::take(&mut pending.calls)
        };
        for (_, waiting) in calls {
            let error = match why {
                Closing::Lost(_) => self.lost(&reason),
                Closing::Tls(_) => RpcError::Tls {
                    addr: self.addr,
                    reason: reason.clone(),
                },
                Closing::Silent(silent_for) => RpcError::Unresponsive {
                    addr: self.addr,
                    silent_for,
                },
            };
            let _ = waiting.reply.send(Err(error));
        }
        self.writer.close();
        self.closed.cancel();
    }
}
