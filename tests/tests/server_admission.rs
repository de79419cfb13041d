//! One peer holding more idle connections than the provider's connection limit cannot lock
//! anyone out, not even a newcomer from its own address: the connections idle longest are
//! reclaimed to admit newcomers. Runs against a real `example-provider` process with its
//! default limits (10,000 connections), so the two ends of 10,000 sockets do not share one
//! process's file descriptor limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::protocol::{Codec, Status};
use tests::process::Provider;
use tests::raw::{closed_within, encode, read_frame, request, WellBehaved, CALC};
use tests::wait::wait_until;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const HOARDED: usize = 10_050;

#[tokio::test]
async fn idle_connections_hoarded_by_one_address_do_not_lock_out_a_newcomer_from_it() {
    let provider = tokio::task::spawn_blocking(|| Provider::start("none", &[]))
        .await
        .unwrap();
    let addr = provider.addr();
    let good = WellBehaved::start(addr).await;
    // The hoarder: connections from 127.0.0.1 that never send a byte. Each is watched so
    // that one the provider closes is released here too.
    let closed = Arc::new(AtomicUsize::new(0));
    for _ in 0..HOARDED {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect failed: {e}"));
        let closed = Arc::clone(&closed);
        tokio::spawn(async move {
            if closed_within(&mut stream, Duration::from_secs(600)).await {
                closed.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    // Past the limit, each newcomer took the place of the connection idle longest: the
    // hoarder's oldest, never the well-behaved client that keeps calling.
    let reclaimed = HOARDED + 1 - DEFAULT_MAX_CONNECTIONS;
    wait_until(
        Duration::from_secs(60),
        "the oldest idle connections to be reclaimed",
        || async { closed.load(Ordering::SeqCst) >= reclaimed },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {} closed", closed.load(Ordering::SeqCst)));
    // A newcomer from the same address is served.
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    let add = request(1, CALC, "add", 0, &(40i64, 2i64));
    newcomer.write_all(&encode(&add)).await.unwrap();
    let reply = read_frame(&mut newcomer, Duration::from_secs(10))
        .await
        .expect("the newcomer was refused");
    assert_eq!((reply.id, reply.status), (1, Status::Ok));
    assert_eq!(Codec::Bincode.decode::<i64>(&reply.body).unwrap(), 42);
    good.served_more(30, Duration::from_secs(10)).await;
    good.finish().await;
    drop(provider);
}
