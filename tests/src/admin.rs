//! Requests to a process's admin HTTP endpoint, written by hand on a raw socket so tests can
//! also send what no well-behaved client would.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (the request line and headers, without the blank line) and `body` with
/// `Connection: close`, and returns the response's status code and body; `None` if the
/// endpoint closed without an answer. Panics if nothing came within 10 s.
pub async fn raw_request(addr: SocketAddr, head: &str, body: &[u8]) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to the admin endpoint {addr}: {e}"));
        let head = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        // A server that answers before reading the whole body may close early: fine.
        let _ = stream.write_all(body).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("the admin endpoint {addr} did not answer {head:?} in 10 s"))
}

/// `METHOD path` with no body: the status code and body.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let head = if method == "POST" {
        format!("{method} {path} HTTP/1.1\r\nContent-Length: 0")
    } else {
        format!("{method} {path} HTTP/1.1")
    };
    raw_request(addr, &head, b"")
        .await
        .unwrap_or_else(|| panic!("the admin endpoint closed on {method} {path} without an answer"))
}
