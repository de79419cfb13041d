//! Bad input over a raw `TcpStream`: every case gets the status the protocol names (or a
//! closed connection after a best-effort error for broken framing), and a valid call on a new
//! connection still works afterwards.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpc_core::protocol::{Codec, Frame, Kind, Status};
use rpc_core::{Server, ServerHandle};
use tests::servers::example_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CALC: &str = "example.Calculator:1.0.0";
const WAIT: Duration = Duration::from_secs(5);

fn encode(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf).unwrap();
    buf
}

fn add_request(id: u64, a: i64, b: i64) -> Frame {
    let body = Codec::Bincode.encode(&(a, b)).unwrap();
    Frame::request(id, Codec::Bincode, 0, CALC, "add", body)
}

/// Reads one frame, or `None` if the server closed the connection first.
async fn read_frame(stream: &mut TcpStream) -> Option<Frame> {
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Frame::parse(Bytes::from(body)).ok()
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the server neither answered nor closed the connection")
}

/// Asserts the server closes the connection (after at most one error frame).
async fn assert_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server did not close the connection");
}

/// A valid call on a fresh connection works.
async fn assert_still_serving(server: &ServerHandle) {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(&encode(&add_request(99, 20, 22)))
        .await
        .unwrap();
    let reply = read_frame(&mut stream)
        .await
        .expect("no reply to a valid call");
    assert_eq!(reply.status, Status::Ok);
    assert_eq!(reply.id, 99);
    assert_eq!(Codec::Bincode.decode::<i64>(&reply.body).unwrap(), 42);
}

async fn server() -> ServerHandle {
    example_server(Server::builder().max_frame(1024 * 1024)).await
}

async fn send_raw(server: &ServerHandle, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

async fn expect_bad_request_then_close(server: &ServerHandle, bytes: &[u8]) {
    let mut stream = send_raw(server, bytes).await;
    let reply = read_frame(&mut stream).await.expect("no error response");
    assert_eq!(reply.kind, Kind::Response);
    assert_eq!(reply.status, Status::BadRequest);
    assert!(!reply.body.is_empty(), "the error response has no message");
    assert_closed(&mut stream).await;
    assert_still_serving(server).await;
}

#[tokio::test]
async fn wrong_magic_gets_bad_request_and_the_connection_closes() {
    let server = server().await;
    let mut bytes = encode(&add_request(1, 1, 2));
    bytes[4] = b'X';
    expect_bad_request_then_close(&server, &bytes).await;
}

#[tokio::test]
async fn wrong_version_gets_bad_request_and_the_connection_closes() {
    let server = server().await;
    let mut bytes = encode(&add_request(1, 1, 2));
    bytes[6] = 9;
    expect_bad_request_then_close(&server, &bytes).await;
}

#[tokio::test]
async fn a_length_over_the_limit_gets_bad_request_and_the_connection_closes() {
    let server = server().await;
    // 1 MiB limit; announce 64 MiB and send only the prefix.
    let bytes = (64u32 * 1024 * 1024).to_be_bytes();
    expect_bad_request_then_close(&server, &bytes).await;
}

#[tokio::test]
async fn a_truncated_frame_closes_only_that_connection() {
    let server = server().await;
    let bytes = encode(&add_request(1, 1, 2));
    let mut stream = send_raw(&server, &bytes[..bytes.len() - 3]).await;
    stream.shutdown().await.unwrap();
    assert_closed(&mut stream).await;
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_body_that_does_not_decode_gets_status_4_and_the_connection_stays_usable() {
    let server = server().await;
    let garbage = Frame::request(
        5,
        Codec::Json,
        0,
        CALC,
        "add",
        Bytes::from_static(b"{not json"),
    );
    let mut stream = send_raw(&server, &encode(&garbage)).await;
    let reply = read_frame(&mut stream).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (5, Status::BadRequest));
    assert!(String::from_utf8_lossy(&reply.body).contains("add"));
    // Same connection, valid call.
    stream
        .write_all(&encode(&add_request(6, 2, 3)))
        .await
        .unwrap();
    let reply = read_frame(&mut stream).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (6, Status::Ok));
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn unknown_service_and_method_get_status_2_and_3() {
    let server = server().await;
    let body = Codec::Bincode.encode(&()).unwrap();
    let unknown_service = Frame::request(
        1,
        Codec::Bincode,
        0,
        "nope.Service:1.0.0",
        "x",
        body.clone(),
    );
    let unknown_method = Frame::request(2, Codec::Bincode, 0, CALC, "multiply", body);
    let mut stream = send_raw(&server, &encode(&unknown_service)).await;
    let reply = read_frame(&mut stream).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (1, Status::UnknownService));
    stream.write_all(&encode(&unknown_method)).await.unwrap();
    let reply = read_frame(&mut stream).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (2, Status::UnknownMethod));
    assert!(String::from_utf8_lossy(&reply.body).contains("multiply"));
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn a_silent_peer_does_not_block_others_and_is_closed_when_idle() {
    let server =
        example_server(Server::builder().idle_timeout(Some(Duration::from_millis(300)))).await;
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_still_serving(&server).await;
    assert_closed(&mut silent).await;
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn http_or_other_garbage_gets_bad_request_and_the_connection_closes() {
    let server = server().await;
    expect_bad_request_then_close(&server, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    // Short garbage: a length below the header size.
    expect_bad_request_then_close(&server, &[0, 0, 0, 3, 1, 2, 3]).await;
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_id() {
    let server = server().await;
    let mut stream = send_raw(&server, &encode(&Frame::control(Kind::Ping, 77))).await;
    let reply = read_frame(&mut stream).await.expect("no pong");
    assert_eq!((reply.kind, reply.id), (Kind::Pong, 77));
}

#[tokio::test]
async fn the_server_itself_enforces_the_deadline_in_the_header() {
    let server = server().await;
    let body = Codec::Bincode.encode(&(5_000u64,)).unwrap();
    let sleep = Frame::request(3, Codec::Bincode, 200, CALC, "sleep", body);
    let started = std::time::Instant::now();
    let mut stream = send_raw(&server, &encode(&sleep)).await;
    let reply = read_frame(&mut stream).await.expect("no reply");
    assert_eq!((reply.id, reply.status), (3, Status::DeadlineExceeded));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cancel_frame_stops_the_handler_and_later_calls_work() {
    let server = server().await;
    let body = Codec::Bincode.encode(&(5_000u64,)).unwrap();
    let sleep = Frame::request(3, Codec::Bincode, 0, CALC, "sleep", body);
    let mut stream = send_raw(&server, &encode(&sleep)).await;
    stream
        .write_all(&encode(&Frame::control(Kind::Cancel, 3)))
        .await
        .unwrap();
    stream
        .write_all(&encode(&add_request(4, 1, 1)))
        .await
        .unwrap();
    let reply = read_frame(&mut stream).await.expect("no reply");
    // The cancelled call never answers; the next one does.
    assert_eq!((reply.id, reply.status), (4, Status::Ok));
}
