//! `volo`: the same echo on CloudWeGo Volo's Thrift (`volo-thrift`, TTHeader + framed binary
//! protocol), code generated at build time from `idl/echo.thrift` by `volo-build`. Client and
//! server are both multiplexed (`volo-thrift`'s `multiplex` feature and the `#[doc(hidden)]`
//! `multiplex(true)` builder methods), so concurrent callers share one connection; without
//! that, each concurrent caller silently gets a pooled connection of its own and a mismatched
//! pair still works, so [`expect_one_connection`] checks the count. Volo sets `TCP_NODELAY` on
//! both ends itself (`volo::net::conn::ConnStream::from` and its dialer). Every other setting
//! is Volo's default: no call deadline, 16 MiB largest frame.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;
use volo_thrift::ServerError;

use super::{BenchError, EchoClient as BenchClient, ServerGuard};

/// Code generated from `idl/echo.thrift`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unused)]
pub mod gen {
    include!(concat!(env!("OUT_DIR"), "/volo_gen.rs"));
}

use gen::volo_gen::bench::{Echo, EchoClient, EchoClientBuilder, EchoServer};

/// The echo implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, data: pilota::Bytes) -> Result<pilota::Bytes, ServerError> {
        Ok(data)
    }
}

/// Starts the multiplexed echo server.
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    spawn_server(listen, EchoImpl).await
}

/// Runs `handler` behind the server configuration the benchmark measures, on a listener
/// bound here so the address is known before Volo's accept loop starts.
async fn spawn_server<H>(listen: &str, handler: H) -> Result<(SocketAddr, ServerGuard), BenchError>
where
    H: Echo + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let incoming = volo::net::incoming::DefaultIncoming::from(listener);
    let task = tokio::spawn(async move {
        if let Err(e) = EchoServer::new(handler).multiplex(true).run(incoming).await {
            eprintln!("rpc-bench serve: volo server stopped: {e}");
        }
    });
    Ok((addr, Box::new(task.abort_handle())))
}

/// A multiplexed Volo client; clones share its one connection.
#[derive(Clone)]
pub struct VoloClient(EchoClient);

/// Builds the multiplexed client for `addr` (Volo connects on the first call).
pub async fn connect(addr: SocketAddr) -> Result<VoloClient, BenchError> {
    let client = EchoClientBuilder::new("bench.Echo")
        .address(addr)
        .multiplex(true)
        .build();
    Ok(VoloClient(client))
}

impl BenchClient for VoloClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        // A copy of the payload, as the other systems' clients make (their `Vec<u8>`
        // arguments), though Volo could take the shared `Bytes` as it is.
        let reply = self.0.echo(Bytes::copy_from_slice(payload)).await?;
        Ok(reply.len())
    }
}

/// Fails unless exactly one established TCP connection ends at the server's `addr`: the
/// multiplexed client must carry every concurrent call on one connection.
pub fn expect_one_connection(addr: SocketAddr) -> Result<(), BenchError> {
    match established_to(addr)? {
        1 => Ok(()),
        n => Err(format!("volo client uses {n} connections to {addr}, expected exactly 1").into()),
    }
}

/// Established TCP connections whose local end is `addr` (a server's accepted connections),
/// read from `/proc/net/tcp`: the kernel's table for this network namespace.
pub fn established_to(addr: SocketAddr) -> Result<usize, BenchError> {
    let SocketAddr::V4(addr) = addr else {
        return Err(format!("{addr} is not IPv4: only /proc/net/tcp is read").into());
    };
    let table = std::fs::read_to_string("/proc/net/tcp")?;
    Ok(count_established(&table, addr))
}

/// The kernel's `st` code for `ESTABLISHED`.
const ESTABLISHED: &str = "01";

/// Rows of a `/proc/net/tcp` table with local address `addr` in state `ESTABLISHED`.
fn count_established(table: &str, addr: SocketAddrV4) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(_remote), Some(state)) =
                (fields.next(), fields.next(), fields.next())
            else {
                return false;
            };
            state == ESTABLISHED && parse_proc_addr(local) == Some(addr)
        })
        .count()
}

/// `0100007F:1F90` (the address as the kernel's native-endian `u32`, then the port) as
/// `127.0.0.1:8080`.
fn parse_proc_addr(field: &str) -> Option<SocketAddrV4> {
    let (ip, port) = field.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn proc_net_tcp_rows_are_counted_by_local_address_and_state() {
        let local = u32::from_ne_bytes([127, 0, 0, 1]);
        let table = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue\n\
             0: {local:08X}:1F90 00000000:0000 0A 00000000:00000000\n\
             1: {local:08X}:1F90 {local:08X}:C350 01 00000000:00000000\n\
             2: {local:08X}:C350 {local:08X}:1F90 01 00000000:00000000\n\
             3: {local:08X}:1F90 {local:08X}:C351 06 00000000:00000000\n\
             4: {local:08X}:C351 {local:08X}:1F90 01 00000000:00000000\n"
        );
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
        assert_eq!(count_established(&table, addr), 1);
    }

    /// 64 concurrent callers on one multiplexed client: the server sees one connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_one_connection() {
        let (addr, _server) = serve("127.0.0.1:0").await.expect("volo server starts");
        let client = connect(addr).await.expect("client builds");
        let payload = Bytes::from(vec![7u8; 1024]);
        let mut calls = Vec::new();
        for _ in 0..64 {
            let client = client.clone();
            let payload = payload.clone();
            calls.push(tokio::spawn(async move {
                let call = client.echo(&payload);
                tokio::time::timeout(std::time::Duration::from_secs(10), call).await
            }));
        }
        for call in calls {
            let len = call
                .await
                .expect("caller task")
                .expect("reply within 10 s")
                .expect("echo ok");
            assert_eq!(len, 1024);
        }
        assert_eq!(established_to(addr).expect("reads /proc/net/tcp"), 1);
    }

    /// Echoes once two calls are in the handler at the same time.
    struct Rendezvous(Arc<tokio::sync::Barrier>);

    impl Echo for Rendezvous {
        async fn echo(&self, data: pilota::Bytes) -> Result<pilota::Bytes, ServerError> {
            self.0.wait().await;
            Ok(data)
        }
    }

    /// The server side is multiplexed too: two calls on the one connection are handled at
    /// the same time (a ping-pong server reads the second only after answering the first, so
    /// neither would ever return).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_handles_calls_of_one_connection_concurrently() {
        let handler = Rendezvous(Arc::new(tokio::sync::Barrier::new(2)));
        let (addr, _server) = spawn_server("127.0.0.1:0", handler)
            .await
            .expect("volo server starts");
        let client = connect(addr).await.expect("client builds");
        let payload = Bytes::from_static(b"ping");
        let both = futures::future::try_join(client.echo(&payload), client.echo(&payload));
        let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("both calls answered within 10 s")
            .expect("echo ok");
        assert_eq!((a, b), (4, 4));
        assert_eq!(established_to(addr).expect("reads /proc/net/tcp"), 1);
    }
}
