//! Tower middleware on both ends: the server requires `authorization` (status 9 without it)
//! and allows 3 calls per second (status 6 past that); one client adds the header with a
//! layer, the other does not.
//!
//! `cargo run -p example-provider --example middleware`

use std::time::Duration;

use example_provider::middleware::{RateLimitLayer, RequireMetadataLayer};
use example_provider::{ExampleProvider, GreeterClient, GreeterServer};
use rpc_core::client::ClientRequest;
use rpc_core::tower::util::MapRequestLayer;
use rpc_core::{Client, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .layer(RequireMetadataLayer::new("authorization"))
        .layer(RateLimitLayer::new(3, Duration::from_secs(1)))
        .serve(GreeterServer::new(ExampleProvider::default()))
        .start()
        .await?;
    let addr = server.local_addr().to_string();

    let anonymous = GreeterClient::connect(&addr).await?;
    match anonymous.hello("anonymous".into()).await {
        Ok(reply) => println!("anonymous: {reply}"),
        Err(e) => println!("anonymous: refused: {e}"),
    }

    let with_token = Client::builder()
        .layer(MapRequestLayer::new(|mut request: ClientRequest| {
            // A fixed token for the example; a real client reads it from its secrets.
            let _ = request
                .metadata_mut()
                .insert("authorization", "Bearer example");
            request
        }))
        .connect(&addr)
        .await?;
    let greeter = GreeterClient::new(with_token);
    for i in 1..=5 {
        match greeter.hello(format!("call {i}")).await {
            Ok(reply) => println!("with token: {reply}"),
            Err(e) => println!("with token: refused: {e}"),
        }
    }
    server.shutdown().await?;
    Ok(())
}
