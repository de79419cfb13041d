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
