//! End to end over real TCP on 127.0.0.1: every example method in every built-in codec, multiplexing,
//! concurrency, deadlines, panics, graceful shutdown, and a server killed and restarted.

use std::time::{Duration, Instant};

use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::{CallOptions, Client, Codec, RpcError, Server, Status};
use tests::process::Provider;
use tests::servers::example_server;

async fn clients(addr: &str, codec: Codec) -> (GreeterClient, CalculatorClient) {
    let client = Client::builder()
        .codec(codec)
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    (
        GreeterClient::new(client.clone()),
        CalculatorClient::new(client),
    )
}

#[tokio::test]
async fn every_method_works_in_every_codec() {
    let server = example_server(Server::builder()).await;
    let addr = server.local_addr().to_string();
    for codec in Codec::BUILT_IN {
        let (greeter, calc) = clients(&addr, codec).await;
        assert_eq!(greeter.hello("bob".into()).await.unwrap(), "Hello, bob!");
        assert_eq!(greeter.whoami().await.unwrap(), addr);
        assert_eq!(calc.add(2, 3).await.unwrap(), 5);
        assert_eq!(calc.add(-7, 3).await.unwrap(), -4);
        assert_eq!(calc.divide(10, 2).await.unwrap(), Ok(5));
        assert_eq!(
            calc.divide(1, 0).await.unwrap(),
            Err("division by zero".to_string())
        );
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(calc.echo(data.clone()).await.unwrap(), data);
        assert_eq!(calc.echo(Vec::new()).await.unwrap(), Vec::<u8>::new());
        calc.sleep(5).await.unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_thousand_concurrent_calls_share_one_connection() {
    let server = example_server(Server::builder()).await;
    let (_, calc) = clients(&server.local_addr().to_string(), Codec::Bincode).await;
    let calls = (0..1000i64).map(|i| {
        let calc = calc.clone();
        async move { (i, calc.add(i, i * 2).await) }
    });
    let results = futures::future::join_all(calls).await;
    for (i, result) in results {
        assert_eq!(result.unwrap(), i * 3, "call {i}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_call_does_not_delay_a_later_one_on_the_same_connection() {
    let server = example_server(Server::builder()).await;
    let (_, calc) = clients(&server.local_addr().to_string(), Codec::Bincode).await;
    let slow = {
        let calc = calc.clone();
        tokio::spawn(async move { calc.sleep(1000).await })
    };
    // Let the sleep reach the server first.
    tokio::task::yield_now().await;
    let started = Instant::now();
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    let fast = started.elapsed();
    assert!(
        fast < Duration::from_millis(900),
        "add took {fast:?} behind a 1 s sleep"
    );
    assert!(
        !slow.is_finished(),
        "the sleep finished before the add returned"
    );
    slow.await.unwrap().unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_exceeded_deadline_returns_status_5_in_time() {
    let server = example_server(Server::builder()).await;
    let (_, calc) = clients(&server.local_addr().to_string(), Codec::Bincode).await;
    let deadline = Duration::from_millis(200);
    let calc = calc.with_options(CallOptions::new().with_deadline(deadline));
    let started = Instant::now();
    let err = calc.sleep(2000).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.status(), Some(Status::DeadlineExceeded), "{err}");
    assert!(
        took < deadline + Duration::from_millis(100),
        "took {took:?} for a {deadline:?} deadline"
    );
    // The connection is still good.
    assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    server.shutdown().await.unwrap();
}

/// What the panicky handler panics with.
const ASKED_TO_FAIL: &str = "asked to fail";

mod panicky {
    #[rpc_core::service(name = "test.Panicky")]
    pub trait Panicky {
        async fn boom(&self, fail: bool) -> u32;
    }

    pub struct Impl;

    impl Panicky for Impl {
        async fn boom(&self, fail: bool) -> u32 {
            if fail {
                panic!("{}", super::ASKED_TO_FAIL);
            }
            7
        }
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_status_1_and_the_next_call_works() {
    use panicky::{Impl, PanickyClient, PanickyServer};
    tests::panics::silence_panics_saying(ASKED_TO_FAIL);
    let server = Server::builder()
        .serve(PanickyServer::new(Impl))
        .start()
        .await
        .unwrap();
    let client = PanickyClient::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let err = client.boom(true).await.unwrap_err();
    assert_eq!(err.status(), Some(Status::ApplicationError), "{err}");
    assert!(err.to_string().contains("asked to fail"), "{err}");
    assert_eq!(client.boom(false).await.unwrap(), 7);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_completes_in_flight_calls_and_refuses_new_ones() {
    let server = example_server(
        Server::builder()
            .propagation_grace(Duration::ZERO)
            .drain_grace(Duration::from_secs(10)),
    )
    .await;
    let addr = server.local_addr().to_string();
    let (_, calc) = clients(&addr, Codec::Bincode).await;
    let in_flight: Vec<_> = (0..5)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.sleep(500).await })
        })
        .collect();
    // Make sure the calls are on the server before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = tokio::spawn(server.shutdown());
    for call in in_flight {
        call.await
            .unwrap()
            .expect("an in-flight call failed during graceful shutdown");
    }
    shutdown.await.unwrap().unwrap();
    // New calls are refused: the old connection is gone and so is the listener.
    let err = calc.add(1, 2).await.unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Connect { .. } | RpcError::ConnectionLost { .. } | RpcError::GoAway { .. }
        ),
        "{err}"
    );
    assert!(
        Client::connect(&addr).await.is_err(),
        "a new connection was accepted"
    );
}

#[tokio::test]
async fn killing_the_server_fails_pending_calls_promptly_and_the_client_reconnects() {
    let mut provider = Provider::start("none", &[]);
    let addr = provider.address();
    let (_, calc) = clients(&addr, Codec::Bincode).await;
    let calc = calc.with_options(CallOptions::new().with_deadline(Duration::from_secs(30)));
    let pending: Vec<_> = (0..10)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.sleep(20_000).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Instant::now();
    provider.kill();
    for call in pending {
        let err = call.await.unwrap().unwrap_err();
        assert!(matches!(err, RpcError::ConnectionLost { .. }), "{err}");
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "pending calls took {took:?} to fail"
    );

    // While the server is down, calls fail with a connection error instead of hanging.
    let err = calc.add(1, 2).await.unwrap_err();
    assert!(matches!(err, RpcError::Connect { .. }), "{err}");

    // Back on the same port: the next call reconnects.
    let _again = Provider::start_on(&addr, "none", &[]);
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
}
