//! Calls a hostile peer crafts by hand on a raw socket — length bombs, cancels racing
//! completions, replies over the frame limit — each answered for that call alone, while a
//! well-behaved client on its own connection sees no failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::protocol::{Codec, Frame, Kind, Status};
use rpc_core::{Client, RpcError, Server};
use tests::raw::{encode, read_frame, request, WellBehaved, CALC, GREETER};
use tests::servers::example_server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

/// A bincode body whose one argument (a string or a byte vector) claims `len` elements:
/// the varint marker for a u64, then the length, and nothing else.
fn length_bomb(len: u64) -> bytes::Bytes {
    let mut body = vec![253u8];
    body.extend_from_slice(&len.to_le_bytes());
    bytes::Bytes::from(body)
}

#[tokio::test]
async fn length_bombs_get_status_4_and_everyone_keeps_being_served() {
    let server = example_server(Server::builder()).await;
    let good = WellBehaved::start(server.local_addr()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut id = 0;
    for len in [1u64 << 34, 1 << 50, 1 << 60, u64::MAX] {
        for (service, method) in [(GREETER, "hello"), (CALC, "echo")] {
            id += 1;
            let bomb = Frame::request(id, Codec::Bincode, 0, service, method, length_bomb(len));
            stream.write_all(&encode(&bomb)).await.unwrap();
            let reply = read_frame(&mut stream, WAIT)
                .await
                .unwrap_or_else(|| panic!("connection closed after a {len}-element {method}"));
            assert_eq!(
                (reply.id, reply.status),
                (id, Status::BadRequest),
                "{method} claiming {len}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            assert!(String::from_utf8_lossy(&reply.body).contains("claims more"));
        }
    }
    // The same connection still serves a valid call.
    stream
        .write_all(&encode(&request(99, CALC, "add", 0, &(40i64, 2i64))))
        .await
        .unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (99, Status::Ok));
    assert_eq!(Codec::Bincode.decode::<i64>(&reply.body).unwrap(), 42);
    good.served_more(30, WAIT).await;
    good.finish().await;
}

/// Rounds of short sleeps, each cancelled at a different moment while its deadline and its
/// completion race the cancel; then the connection must still take its full in-flight limit
/// and go idle. A count that went wrong shows as status 6 (too many in flight).
#[tokio::test]
async fn cancels_racing_completions_never_leak_in_flight_slots() {
    const LIMIT: usize = 50;
    let server = example_server(
        Server::builder()
            .max_in_flight(LIMIT)
            .idle_timeout(Some(Duration::from_millis(500))),
    )
    .await;
    let good = WellBehaved::start(server.local_addr()).await;
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let (replies_tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(frame) = read_frame(&mut read, Duration::from_secs(30)).await {
            if replies_tx.send(frame).is_err() {
                break;
            }
        }
    });
    let mut id = 0u64;
    for round in 0..100u64 {
        let first = id + 1;
        let mut batch = bytes::BytesMut::new();
        for call in 0..LIMIT as u64 {
            id += 1;
            let ms = (round + call) % 3;
            let deadline = ((round * 7 + call) % 4) as u32;
            batch.extend_from_slice(&encode(&request(id, CALC, "sleep", deadline, &(ms,))));
        }
        write.write_all(&batch).await.unwrap();
        // Cancel after 0 to 2.5 ms, so some calls are done, some running, some just timed out.
        tokio::time::sleep(Duration::from_micros((round % 6) * 500)).await;
        let mut cancels = bytes::BytesMut::new();
        for cancelled in first..=id {
            cancels.extend_from_slice(&encode(&Frame::control(Kind::Cancel, cancelled)));
        }
        write.write_all(&cancels).await.unwrap();
        while let Ok(reply) = replies.try_recv() {
            assert_ne!(
                reply.status,
                Status::Overloaded,
                "round {round}: call {} refused as overloaded",
                reply.id
            );
        }
    }
    // Every slot is free again: a full batch of calls runs, none refused. (Cancels are read
    // before the next requests, so nothing from the rounds still holds a slot.)
    let first = id + 1;
    let mut batch = bytes::BytesMut::new();
    for _ in 0..LIMIT {
        id += 1;
        batch.extend_from_slice(&encode(&request(id, CALC, "sleep", 0, &(20u64,))));
    }
    write.write_all(&batch).await.unwrap();
    let mut answered = 0;
    while answered < LIMIT {
        let reply = tokio::time::timeout(WAIT, replies.recv())
            .await
            .expect("the full batch was not answered")
            .expect("connection closed");
        if reply.id < first {
            continue; // a late answer from the rounds
        }
        assert_eq!(
            reply.status,
            Status::Ok,
            "call {} of the full batch",
            reply.id
        );
        answered += 1;
    }
    // And with nothing in flight the connection counts as idle: the idle timeout closes it.
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the idle connection was not closed: calls still counted in flight")
        .unwrap();
    good.finish().await;
}

#[rpc_core::service(name = "test.Big")]
pub trait Big {
    /// Returns `n` bytes.
    async fn blob(&self, n: u64) -> Vec<u8>;
}

#[derive(Clone, Default)]
struct BigImpl {
    calls: Arc<AtomicUsize>,
}

impl Big for BigImpl {
    async fn blob(&self, n: u64) -> Vec<u8> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        vec![7u8; n as usize]
    }
}

#[tokio::test]
async fn a_reply_over_the_frame_limit_is_status_11_for_that_call_only() {
    const LIMIT: usize = 1024 * 1024;
    let big = BigImpl::default();
    let server = example_server(
        Server::builder()
            .max_frame(LIMIT)
            .serve(BigServer::new(big.clone())),
    )
    .await;
    let good = WellBehaved::start(server.local_addr()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let blob = |id, n: u64| request(id, "test.Big:1.0.0", "blob", 0, &(n,));
    stream
        .write_all(&encode(&blob(1, 2 * LIMIT as u64)))
        .await
        .unwrap();
    let reply = read_frame(&mut stream, WAIT)
        .await
        .expect("connection closed");
    assert_eq!((reply.id, reply.status), (1, Status::ResponseTooLarge));
    let message = String::from_utf8_lossy(&reply.body).to_string();
    assert!(
        message.contains("frame limit of 1048576 bytes"),
        "{message}"
    );
    // The connection lives on: a reply just under the limit goes through.
    stream
        .write_all(&encode(&blob(2, LIMIT as u64 - 100)))
        .await
        .unwrap();
    let reply = read_frame(&mut stream, WAIT)
        .await
        .expect("connection closed");
    assert_eq!((reply.id, reply.status), (2, Status::Ok));

    // Through the client: an error naming status 11, and the handler ran once (not retried).
    let client = Client::builder()
        .max_frame(LIMIT)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let before = big.calls.load(Ordering::SeqCst);
    let err = BigClient::new(client)
        .blob(2 * LIMIT as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Status {
                status: Status::ResponseTooLarge,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        big.calls.load(Ordering::SeqCst),
        before + 1,
        "the call was retried"
    );
    good.served_more(30, WAIT).await;
    good.finish().await;
}
