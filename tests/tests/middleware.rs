//! Tower middleware on both ends: a server layer refuses calls without `authorization`
//! (status 9), a client layer adds it, and a rate-limit layer answers calls over its budget
//! with status 6 while the rest succeed.

use std::time::Duration;

use example_provider::middleware::{RateLimitLayer, RequireMetadataLayer};
use example_provider::GreeterClient;
use rpc_core::client::ClientRequest;
use rpc_core::tower::util::MapRequestLayer;
use rpc_core::{Client, Server, Status};
use tests::servers::example_server;

#[tokio::test]
async fn a_server_layer_refuses_calls_without_the_header_and_a_client_layer_adds_it() {
    let server =
        example_server(Server::builder().layer(RequireMetadataLayer::new("authorization"))).await;
    let addr = server.local_addr().to_string();

    let bare = GreeterClient::connect(&addr).await.unwrap();
    let error = bare.hello("bob".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::Unauthenticated), "{error}");
    assert!(error.to_string().contains("authorization"), "{error}");

    let with_token = Client::builder()
        .layer(MapRequestLayer::new(|mut request: ClientRequest| {
            request
                .metadata_mut()
                .insert("authorization", "Bearer t0ken")
                .unwrap();
            request
        }))
        .connect(&addr)
        .await
        .unwrap();
    let greeter = GreeterClient::new(with_token);
    assert_eq!(greeter.hello("bob".into()).await.unwrap(), "Hello, bob!");
    // The bare client is still refused on the same server.
    let error = bare.whoami().await.unwrap_err();
    assert_eq!(error.status(), Some(Status::Unauthenticated));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_rate_limit_layer_turns_excess_calls_into_status_6() {
    // A window far longer than the test: exactly 5 calls get through.
    let server =
        example_server(Server::builder().layer(RateLimitLayer::new(5, Duration::from_secs(3600))))
            .await;
    let greeter = GreeterClient::connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let mut ok = 0;
    let mut overloaded = 0;
    for i in 0..8 {
        match greeter.hello(format!("n{i}")).await {
            Ok(reply) => {
                assert_eq!(reply, format!("Hello, n{i}!"));
                ok += 1;
            }
            Err(e) if e.status() == Some(Status::Overloaded) => overloaded += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, overloaded), (5, 3));
    server.shutdown().await.unwrap();
}
