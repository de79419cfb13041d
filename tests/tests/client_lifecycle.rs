//! A client's own lifetime and budget: dropping the last handle closes its connections at
//! once, and a deadline of `Duration::MAX` means none.

use std::time::Duration;

use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::{CallOptions, Client, Server};
use tests::servers::example_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Relays one connection to `upstream` and reports when the client's side ends (EOF).
async fn relay_once(
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (eof_tx, eof_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = eof_tx.send(());
    });
    (addr, eof_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_closes_its_connection_within_1s() {
    let server = example_server(Server::builder().idle_timeout(None)).await;
    let (relay, eof) = relay_once(server.local_addr()).await;
    let client = Client::connect(&relay.to_string()).await.unwrap();
    let calc = CalculatorClient::new(client.clone());
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    drop(calc);
    drop(client);
    let seen = tokio::time::timeout(Duration::from_secs(1), eof).await;
    assert!(
        matches!(seen, Ok(Ok(()))),
        "the provider saw no end of the connection within 1 s of dropping the client"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_of_duration_max_means_none_and_the_call_succeeds() {
    let server = example_server(Server::builder()).await;
    let forever = CallOptions::new().with_deadline(Duration::MAX);
    let direct = Client::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let calc = CalculatorClient::new(direct).with_options(forever.clone());
    assert_eq!(calc.add(20, 22).await.unwrap(), 42);
    calc.sleep(10).await.unwrap();

    // Through the cluster path too: attempt budgets and fail-over take the same deadline.
    let registry: std::sync::Arc<dyn rpc_core::Registry> =
        rpc_registry::connect("memory://").await.unwrap();
    registry
        .register(&rpc_core::ServiceInstance::new(
            &tests::consumer::greeter_key(),
            "127.0.0.1",
            server.local_addr().port(),
        ))
        .await
        .unwrap();
    let greeter = GreeterClient::new(Client::discover(registry)).with_options(forever);
    assert_eq!(greeter.hello("max".into()).await.unwrap(), "Hello, max!");
    server.shutdown().await.unwrap();
}

/// A server at its connection limit accepts and closes at once. The client must not redial
/// it on every call (a hot loop of connects and failures); it backs off, bounded and
/// jittered, and every call still fails fast with a connection error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_at_accept_backs_off_instead_of_redialling_on_every_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acceptor = tokio::spawn({
        let accepted = std::sync::Arc::clone(&accepted);
        async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    let calc = CalculatorClient::new(Client::builder().direct(addr));
    let started = tokio::time::Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < Duration::from_secs(2) {
        let err = calc.add(1, 1).await.unwrap_err();
        assert!(err.is_provider_failure(), "{err}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    println!("{calls} calls in 2 s opened {connections} connections");
    assert!(calls > 100, "calls did not fail fast: {calls}");
    // 50 ms doubling to 2 s, jittered: at most 7 connects in 2 s; a hot loop makes one per call.
    assert!(
        connections <= 10,
        "{connections} connections for {calls} calls: no backoff"
    );
    acceptor.abort();
}
