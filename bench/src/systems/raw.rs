//! `raw`: what the machine allows. A Tokio TCP echo with the framework's 4-byte big-endian
//! length prefix and no RPC layer: a frame is `len, request id (8 bytes), payload`, and the
//! server writes every frame back unchanged.
//!
//! The client is multiplexed like the RPC systems: all callers share one connection, a writer
//! task sends whatever frames have piled up with one `write_all`, and a reader task hands each
//! response to its caller by request id. The server answers every frame of one read with one
//! write, in a single task per connection, with no per-request task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

use super::{BenchError, EchoClient, ServerGuard};

/// The largest frame either side accepts.
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Bytes of the request id after the length prefix.
const ID_LEN: usize = 8;

/// Starts the echo server.
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(echo_connection(stream));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
    Ok((addr, Box::new(task.abort_handle())))
}

/// Echoes every complete frame of each read back with one write.
async fn echo_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = BytesMut::with_capacity(64 * 1024);
    loop {
        if stream.read_buf(&mut input).await? == 0 {
            return Ok(());
        }
        while let Some(len) = complete_frame(&mut input)? {
            output.extend_from_slice(&input[..4 + len]);
            input.advance(4 + len);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
    }
}

/// The length of the first frame in `buf` if all of it has arrived; reserves room otherwise.
fn complete_frame(buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(ID_LEN..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    Ok(Some(len))
}

/// A multiplexed raw client over one or more connections.
#[derive(Clone)]
pub struct RawClient {
    connections: Arc<[Arc<Connection>]>,
    next: Arc<AtomicUsize>,
}

struct Connection {
    out: Mutex<BytesMut>,
    wake: Notify,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    next_id: AtomicU64,
}

impl Connection {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<Bytes>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn out(&self) -> MutexGuard<'_, BytesMut> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens `connections` connections to `addr`.
pub async fn connect(addr: SocketAddr, connections: usize) -> Result<RawClient, BenchError> {
    let mut list = Vec::new();
    for _ in 0..connections.max(1) {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let connection = Arc::new(Connection {
            out: Mutex::new(BytesMut::with_capacity(64 * 1024)),
            wake: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(write_loop(write, Arc::clone(&connection)));
        tokio::spawn(read_loop(read, Arc::clone(&connection)));
        list.push(connection);
    }
    Ok(RawClient {
        connections: list.into(),
        next: Arc::new(AtomicUsize::new(0)),
    })
}

async fn write_loop(mut io: tokio::net::tcp::OwnedWriteHalf, connection: Arc<Connection>) {
    let mut spare = BytesMut::with_capacity(64 * 1024);
    loop {
        {
            let mut out = connection.out();
            std::mem::swap(&mut *out, &mut spare);
        }
        if spare.is_empty() {
            connection.wake.notified().await;
            continue;
        }
        if io.write_all(&spare).await.is_err() {
            return;
        }
        spare.clear();
    }
}

async fn read_loop(mut io: tokio::net::tcp::OwnedReadHalf, connection: Arc<Connection>) {
    let mut input = BytesMut::with_capacity(64 * 1024);
    loop {
        match io.read_buf(&mut input).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match complete_frame(&mut input) {
                Ok(Some(len)) => {
                    input.advance(4);
                    let mut frame = input.split_to(len).freeze();
                    let id = frame.get_u64();
                    if let Some(tx) = connection.pending().remove(&id) {
                        let _ = tx.send(frame);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    connection.pending().clear();
                    return;
                }
            }
        }
    }
    // Dropping the senders fails every waiting call.
    connection.pending().clear();
}

impl EchoClient for RawClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        let index = if self.connections.len() == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len()
        };
        let connection = &self.connections[index];
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        connection.pending().insert(id, tx);
        {
            let mut out = connection.out();
            let len = u32::try_from(ID_LEN + payload.len())?;
            out.reserve(4 + ID_LEN + payload.len());
            out.put_u32(len);
            out.put_u64(id);
            out.put_slice(payload);
        }
        connection.wake.notify_one();
        let reply = rx.await.map_err(|_| "raw connection closed")?;
        Ok(reply.len())
    }
}
