//! Raw-socket peers for tests of the server's defences: frames written and read by hand on a
//! `TcpStream`, and a well-behaved client calling alongside that must see no failure.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rpc_core::protocol::{Codec, Frame};
use rpc_core::Client;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::consumer::Load;

/// The example Calculator's service key.
pub const CALC: &str = "example.Calculator:1.0.0";
/// The example Greeter's service key.
pub const GREETER: &str = "example.Greeter:1.0.0";

/// `frame` as bytes on the wire, length prefix included.
pub fn encode(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    frame
        .encode(&mut buf)
        .unwrap_or_else(|e| panic!("test frame does not encode: {e}"));
    buf
}

/// A bincode request for `service`/`method` with `args` as the argument tuple.
pub fn request<A: serde::Serialize>(
    id: u64,
    service: &str,
    method: &str,
    deadline_ms: u32,
    args: &A,
) -> Frame {
    let body = Codec::Bincode
        .encode(args)
        .unwrap_or_else(|e| panic!("test arguments do not encode: {e}"));
    Frame::request(id, Codec::Bincode, deadline_ms, service, method, body)
}

/// Reads one frame: `None` if the connection closed first, a panic if nothing came within
/// `wait`.
pub async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, wait: Duration) -> Option<Frame> {
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Frame::parse(Bytes::from(body)).ok()
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| panic!("the server neither answered nor closed within {wait:?}"))
}

/// Reads until the server closes the connection; returns whether it did within `wait`.
pub async fn closed_within<R: AsyncRead + Unpin>(stream: &mut R, wait: Duration) -> bool {
    let drain = async {
        let mut sink = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, drain).await.is_ok()
}

/// A well-behaved consumer calling `addr` on its own connection while a test attacks the
/// server; [`WellBehaved::finish`] fails the test if any of its calls failed.
pub struct WellBehaved {
    load: Load,
}

impl WellBehaved {
    /// Connects to `addr` and starts calling, with a few calls in flight at a time.
    pub async fn start(addr: SocketAddr) -> WellBehaved {
        let client = Client::connect(&addr.to_string())
            .await
            .unwrap_or_else(|e| panic!("the well-behaved client cannot connect: {e}"));
        WellBehaved {
            load: Load::start(&client, 4),
        }
    }

    /// Waits until it has made `calls` more calls, so the test knows it was served during
    /// the attack.
    pub async fn served_more(&self, calls: u64, wait: Duration) {
        let start = self.load.calls();
        crate::wait::wait_until(wait, "the well-behaved client to be served", || async {
            self.load.calls() >= start + calls
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops calling and asserts that no call failed.
    pub async fn finish(self) {
        let report = self.load.finish().await;
        assert!(report.calls > 0, "the well-behaved client made no call");
        report.assert_no_failures();
    }
}
