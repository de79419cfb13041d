//! The call context on the server: a handler reads the caller's metadata, address and
//! remaining deadline through `rpc_core::context::current()` and sets metadata on its reply;
//! a metadata block over a limit (65 entries, 16 KiB + 1, an uppercase key) is status 4 for
//! that call alone, and a block whose lengths run past the frame closes the connection. A
//! well-behaved client calling alongside sees no failure.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rpc_core::protocol::{Codec, Metadata, MetadataLimits, Status};
use rpc_core::Server;
use tests::raw::{closed_within, encode, read_frame, request, WellBehaved, CALC};
use tests::servers::example_server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const WHOAMI: &str = "tests.Whoami:1.0.0";

#[rpc_core::service(name = "tests.Whoami", version = "1.0.0")]
trait Whoami {
    /// The caller's `rpc-caller`, its address as the server saw it, and the milliseconds
    /// it still waits.
    async fn whoami(&self) -> (String, String, u64);
}

struct Handler;

impl Whoami for Handler {
    async fn whoami(&self) -> (String, String, u64) {
        let Some(call) = rpc_core::context::current() else {
            return ("no context".into(), String::new(), 0);
        };
        call.set_response_metadata("served-by", "whoami").ok();
        let caller = call
            .metadata()
            .get_str("rpc-caller")
            .unwrap_or("-")
            .to_string();
        let remaining = call.remaining().map_or(0, |d| d.as_millis() as u64);
        (caller, call.peer().to_string(), remaining)
    }
}

async fn whoami_server() -> rpc_core::ServerHandle {
    example_server(Server::builder().serve(WhoamiServer::new(Handler))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_reads_metadata_peer_and_deadline_and_answers_with_metadata() {
    let server = whoami_server().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut call = request(1, WHOAMI, "whoami", 5_000, &());
    let mut metadata = Metadata::new();
    metadata.insert("rpc-caller", "billing").unwrap();
    call.metadata = metadata.encode();
    stream.write_all(&encode(&call)).await.unwrap();

    let reply = read_frame(&mut stream, WAIT).await.expect("a reply");
    assert_eq!(reply.status, Status::Ok, "{reply:?}");
    let (caller, peer, remaining): (String, String, u64) =
        Codec::Bincode.decode(&reply.body).unwrap();
    assert_eq!(caller, "billing");
    assert_eq!(peer, stream.local_addr().unwrap().to_string());
    assert!(
        remaining > 0 && remaining <= 5_000,
        "remaining {remaining} ms"
    );
    let back = Metadata::decode(&reply.metadata, &MetadataLimits::default()).unwrap();
    assert_eq!(back.get_str("served-by"), Some("whoami"));

    // Without metadata the handler still has its context, and the reply carries its entry.
    let plain = request(2, WHOAMI, "whoami", 0, &());
    stream.write_all(&encode(&plain)).await.unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("a reply");
    let (caller, _, remaining): (String, String, u64) = Codec::Bincode.decode(&reply.body).unwrap();
    assert_eq!((caller.as_str(), remaining), ("-", 0));
    server.shutdown().await.unwrap();
}

/// A block of `count` (claimed) entries from raw `(key, value)` pairs, unchecked.
fn raw_block(count: u16, entries: &[(&[u8], &[u8])]) -> Bytes {
    let mut block = BytesMut::new();
    block.put_u16(count);
    for (key, value) in entries {
        block.put_u8(key.len() as u8);
        block.put_slice(key);
        block.put_u16(value.len() as u16);
        block.put_slice(value);
    }
    block.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_a_limit_is_status_4_for_that_call_and_a_torn_block_closes() {
    let server = example_server(Server::builder()).await;
    let well_behaved = WellBehaved::start(server.local_addr()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();

    let keys: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
    let many: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"v"[..])).collect();
    let big_value = vec![b'x'; 16 * 1024];
    let cases = [
        ("65 entries", raw_block(65, &many)),
        ("16 KiB + 1", raw_block(1, &[(b"big", &big_value[..])])),
        ("uppercase key", raw_block(1, &[(b"Rpc-Tag", b"gray")])),
    ];
    for (i, (what, block)) in cases.into_iter().enumerate() {
        let id = 10 + i as u64;
        let mut call = request(id, CALC, "add", 0, &(2i64, 3i64));
        call.metadata = block;
        stream.write_all(&encode(&call)).await.unwrap();
        let reply = read_frame(&mut stream, WAIT)
            .await
            .unwrap_or_else(|| panic!("{what}: closed"));
        assert_eq!(
            (reply.id, reply.status),
            (id, Status::BadRequest),
            "{what}: {reply:?}"
        );
        let message = String::from_utf8_lossy(&reply.body);
        assert!(message.contains("metadata"), "{what}: {message}");

        // The same connection goes on serving.
        let next = request(100 + id, CALC, "add", 0, &(2i64, 3i64));
        stream.write_all(&encode(&next)).await.unwrap();
        let reply = read_frame(&mut stream, WAIT)
            .await
            .expect("served after a bad block");
        assert_eq!(reply.status, Status::Ok, "{what}: the next call: {reply:?}");
        assert_eq!(Codec::Bincode.decode::<i64>(&reply.body).unwrap(), 5);
    }

    // A block whose value runs past the end of the frame: the frame cannot be trusted.
    let mut torn = request(50, CALC, "add", 0, &(2i64, 3i64));
    let mut block = BytesMut::new();
    block.put_u16(1);
    block.put_u8(3);
    block.put_slice(b"abc");
    block.put_u16(60_000);
    torn.metadata = block.freeze();
    torn.body = Bytes::new();
    stream.write_all(&encode(&torn)).await.unwrap();
    if let Some(reply) = read_frame(&mut stream, WAIT).await {
        assert_eq!(
            reply.status,
            Status::BadRequest,
            "best-effort answer: {reply:?}"
        );
    }
    assert!(
        closed_within(&mut stream, WAIT).await,
        "a torn block closes the connection"
    );

    well_behaved.served_more(10, WAIT).await;
    well_behaved.finish().await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_metadata_limits_apply() {
    let limits = MetadataLimits {
        max_entries: 1,
        ..MetadataLimits::default()
    };
    let server = example_server(
        Server::builder()
            .metadata_limits(limits)
            .serve(WhoamiServer::new(Handler)),
    )
    .await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut call = request(1, WHOAMI, "whoami", 0, &());
    let mut metadata = Metadata::new();
    metadata.insert("a", "1").unwrap();
    metadata.insert("b", "2").unwrap();
    call.metadata = metadata.encode();
    stream.write_all(&encode(&call)).await.unwrap();
    let reply = read_frame(&mut stream, WAIT).await.expect("a reply");
    assert_eq!(reply.status, Status::BadRequest, "{reply:?}");
    server.shutdown().await.unwrap();
}
