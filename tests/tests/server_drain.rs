//! Graceful drain: after goaway a connection closes as soon as its last call is answered,
//! and shutdown takes about the propagation grace plus the longest call, not the drain
//! grace. Consumers that found the provider in the registry move to the other provider
//! without a failed call.

use std::time::Duration;

use rpc_core::protocol::{Kind, Status};
use rpc_core::{Client, Server};
use tests::consumer::{calculator_key, greeter_key, wait_listed, Load};
use tests::raw::{closed_within, encode, read_frame, request, CALC};
use tests::servers::example_server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const CALL: Duration = Duration::from_millis(800);
const PROPAGATION: Duration = Duration::from_millis(300);
const DRAIN_GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_drained_connection_closes_within_1s_of_its_last_reply() {
    let registry = rpc_registry::connect("memory://server-drain")
        .await
        .unwrap();
    let draining = example_server(
        Server::builder()
            .registry(registry.clone())
            .propagation_grace(PROPAGATION)
            .drain_grace(DRAIN_GRACE),
    )
    .await;
    let staying = example_server(Server::builder().registry(registry.clone())).await;
    let client = Client::discover(registry);
    let addrs = [
        draining.local_addr().to_string(),
        staying.local_addr().to_string(),
    ];
    wait_listed(&client, &greeter_key(), &addrs, Duration::from_secs(10)).await;
    wait_listed(&client, &calculator_key(), &addrs, Duration::from_secs(10)).await;
    let good = Load::start(&client, 4);

    // A peer with one long call in flight, which then keeps its connection open.
    let mut peer = TcpStream::connect(draining.local_addr()).await.unwrap();
    let sleep = request(1, CALC, "sleep", 0, &(CALL.as_millis() as u64,));
    peer.write_all(&encode(&sleep)).await.unwrap();
    let started = Instant::now();
    let shutdown = tokio::spawn(draining.shutdown());

    let goaway = read_frame(&mut peer, Duration::from_secs(5))
        .await
        .expect("closed before goaway");
    assert_eq!(goaway.kind, Kind::GoAway);
    let reply = read_frame(&mut peer, Duration::from_secs(5))
        .await
        .expect("closed before the in-flight call was answered");
    assert_eq!((reply.id, reply.status), (1, Status::Ok));
    let replied = Instant::now();
    assert!(
        closed_within(&mut peer, Duration::from_secs(1)).await,
        "the drained connection was still open 1 s after its last reply"
    );
    tokio::time::timeout(Duration::from_secs(2), shutdown)
        .await
        .expect("shutdown went on after the last connection closed")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < PROPAGATION + CALL + Duration::from_secs(1),
        "shutdown took {took:?} ({:?} after the last reply); drain grace is {DRAIN_GRACE:?}",
        replied.elapsed()
    );
    good.finish().await.assert_no_failures();
    drop(staying);
}
