//! Peers that hold the server's resources instead of calling: one that never reads its
//! replies, many that send all but the last byte of huge frames, and many that start endless
//! calls and hang up. The server bounds what each holds and frees it, while a well-behaved
//! client on its own connection sees no failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::protocol::{Frame, Kind};
use rpc_core::{Server, ServerHandle};
use tests::raw::{closed_within, encode, read_frame, request, WellBehaved, CALC};
use tests::servers::example_server;
use tests::wait::{holds_for, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_client_that_never_reads_is_no_longer_read_and_its_replies_stay_bounded() {
    const BOUND: usize = 1024 * 1024;
    const PAYLOAD: usize = 64 * 1024;
    const REQUESTS: usize = 2000; // 128 MiB of echoes, far more than any socket buffers
    let server = example_server(Server::builder().max_unsent_bytes(BOUND)).await;
    let good = WellBehaved::start(server.local_addr()).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let echo = encode(&request(0, CALC, "echo", 0, &(vec![1u8; PAYLOAD],)));
    let reply_size = echo.len(); // a reply is no larger than its request
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            for _ in 0..REQUESTS {
                if write.write_all(&echo).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let stats = || server.stats();
    wait_until(WAIT, "the unsent replies to reach the bound", || async {
        stats().unsent_reply_bytes > BOUND
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // From here the server reads nothing more from this peer: its replies stay under the
    // bound (plus the one reply that crossed it) and the peer's writes stall.
    holds_for(
        Duration::from_secs(1),
        "unsent replies within the bound",
        || async { stats().unsent_reply_bytes <= BOUND + reply_size },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", stats()));
    let stalled_at = sent.load(Ordering::SeqCst);
    holds_for(
        Duration::from_millis(500),
        "the peer's writes stalled",
        || async { sent.load(Ordering::SeqCst) == stalled_at },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !writer.is_finished(),
        "the server read all {REQUESTS} requests"
    );
    assert!(
        stalled_at < REQUESTS / 4,
        "{stalled_at} requests were taken"
    );
    good.served_more(30, WAIT).await;
    // The peer hangs up: its queued replies are dropped with its connection.
    writer.abort();
    drop(read);
    wait_until(WAIT, "the unsent replies to be released", || async {
        // The well-behaved client's replies come and go.
        stats().unsent_reply_bytes < 4096
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", stats()));
    good.finish().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_for_the_frame_timeout_is_disconnected() {
    let server = example_server(
        Server::builder()
            .max_unsent_bytes(64 * 1024)
            .frame_timeout(Duration::from_millis(500)),
    )
    .await;
    let good = WellBehaved::start(server.local_addr()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let echo = encode(&request(0, CALC, "echo", 0, &(vec![1u8; 64 * 1024],)));
    let writer = tokio::spawn(async move {
        for _ in 0..2000 {
            if stream.write_all(&echo).await.is_err() {
                return true; // the server closed the connection
            }
        }
        false
    });
    let closed = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the stalled peer was not disconnected")
        .unwrap();
    assert!(
        closed,
        "the server took every request of a peer that never reads"
    );
    connections_become(&server, 1, WAIT).await;
    // What it left unread went with it (the well-behaved client's replies come and go).
    wait_until(
        WAIT,
        "the stalled peer's replies to be released",
        || async { server.stats().unsent_reply_bytes < 4096 },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", server.stats()));
    good.served_more(30, WAIT).await;
    good.finish().await;
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

#[tokio::test]
async fn half_sent_huge_frames_share_one_bounded_budget_and_time_out() {
    const MAX_FRAME: usize = 16 * 1024 * 1024;
    const BUDGET: usize = 64 * 1024 * 1024;
    const PEERS: usize = 40;
    const FRAME_TIMEOUT: Duration = Duration::from_secs(2);
    let server = example_server(
        Server::builder()
            .max_frame(MAX_FRAME)
            .max_partial_frame_bytes(BUDGET)
            .frame_timeout(FRAME_TIMEOUT),
    )
    .await;
    let good = WellBehaved::start(server.local_addr()).await;
    let rss_before = rss();
    // A frame of MAX_FRAME - 1 bytes after its prefix; each peer sends all but the last byte.
    let len = MAX_FRAME - 1;
    let mut almost = bytes::BytesMut::with_capacity(4 + len);
    almost.extend_from_slice(&(len as u32).to_be_bytes());
    almost.resize(4 + len - 1, 0);
    let almost = almost.freeze();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut peers = Vec::new();
    for _ in 0..PEERS {
        let (almost, closed) = (almost.clone(), Arc::clone(&closed));
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        peers.push(tokio::spawn(async move {
            // Stalls (unread) or fails (closed by the server) for most peers.
            let _ = stream.write_all(&almost).await;
            if closed_within(&mut stream, Duration::from_secs(60)).await {
                closed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let partial = || server.stats().partial_frame_bytes;
    wait_until(WAIT, "frames to be received up to the budget", || async {
        partial() >= BUDGET - MAX_FRAME
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", server.stats()));
    let (mut peak, mut peak_rss) = (0, 0);
    // Every peer is closed once its frame timeout passes; until then the budget holds.
    let all_closed = wait_until(
        FRAME_TIMEOUT + WAIT,
        "every half-sent frame to time out",
        || {
            peak = peak.max(partial());
            peak_rss = peak_rss.max(rss());
            let closed = Arc::clone(&closed);
            async move { closed.load(Ordering::SeqCst) == PEERS }
        },
    )
    .await;
    all_closed.unwrap_or_else(|e| panic!("{e}: {} closed", closed.load(Ordering::SeqCst)));
    assert!(peak <= BUDGET, "partly received frames held {peak} bytes");
    let grown = peak_rss.saturating_sub(rss_before);
    println!("resident memory grew by {} MiB at most", grown >> 20);
    assert!(
        grown < 2 * BUDGET,
        "resident memory grew by {} MiB for {PEERS} half-sent frames",
        grown >> 20
    );
    assert_eq!(partial(), 0);
    good.served_more(30, WAIT).await;
    good.finish().await;
}

#[rpc_core::service(name = "test.Hang")]
pub trait Hang {
    /// Never returns.
    async fn forever(&self);
}

#[derive(Clone, Default)]
struct HangImpl {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

/// Counts the handler futures dropped before they finished.
struct DropFlag(Arc<AtomicUsize>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Hang for HangImpl {
    async fn forever(&self) {
        let _flag = DropFlag(Arc::clone(&self.dropped));
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }
}

async fn connections_become(server: &ServerHandle, n: usize, within: Duration) {
    wait_until(within, &format!("{n} connections"), || async {
        server.stats().connections == n
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", server.stats()));
}

#[tokio::test]
async fn handlers_of_a_peer_that_hung_up_are_dropped_and_its_slot_is_free_within_1s() {
    const PEERS: usize = 20;
    let hang = HangImpl::default();
    let server = example_server(
        Server::builder()
            .max_connections(PEERS + 1)
            .serve(HangServer::new(hang.clone())),
    )
    .await;
    let good = WellBehaved::start(server.local_addr()).await;
    let mut peers = Vec::new();
    for id in 0..PEERS as u64 {
        let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let call = Frame::request(
            id,
            rpc_core::Codec::Bincode,
            0,
            "test.Hang:1.0.0",
            "forever",
            rpc_core::Codec::Bincode.encode(&()).unwrap(),
        );
        stream.write_all(&encode(&call)).await.unwrap();
        peers.push(stream);
    }
    wait_until(WAIT, "every endless call to start", || async {
        hang.started.load(Ordering::SeqCst) == PEERS
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    connections_become(&server, PEERS + 1, WAIT).await;
    let hung_up = tokio::time::Instant::now();
    drop(peers);
    wait_until(
        Duration::from_secs(1),
        "every handler to be dropped",
        || async { hang.dropped.load(Ordering::SeqCst) == PEERS },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {} dropped", hang.dropped.load(Ordering::SeqCst)));
    connections_become(
        &server,
        1,
        Duration::from_secs(1).saturating_sub(hung_up.elapsed()),
    )
    .await;
    // The freed slots take new peers at once.
    let mut newcomer = TcpStream::connect(server.local_addr()).await.unwrap();
    newcomer
        .write_all(&encode(&Frame::control(Kind::Ping, 5)))
        .await
        .unwrap();
    let pong = read_frame(&mut newcomer, WAIT)
        .await
        .expect("newcomer refused");
    assert_eq!((pong.kind, pong.id), (Kind::Pong, 5));
    good.served_more(30, WAIT).await;
    good.finish().await;
}
