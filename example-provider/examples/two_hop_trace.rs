//! Prints a two-hop trace: this process calls `example.Relay`, which calls
//! `example.Greeter`; every span of the chain (`rpc.client` here, `rpc.server` and
//! `rpc.client` in the relay, `rpc.server` in the greeter) shows the same `trace_id`.
//!
//! `cargo run -p example-provider --example two_hop_trace`

use example_provider::{ExampleProvider, ExampleRelay, GreeterServer, RelayClient, RelayServer};
use rpc_core::{Client, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Calls' spans are at debug level: an `info` subscriber would print nothing per call.
    tracing_subscriber::fmt()
        .with_env_filter("warn,rpc_core=debug")
        .with_writer(std::io::stderr)
        .init();

    let greeter = Server::builder()
        .serve(GreeterServer::new(ExampleProvider::default()))
        .start()
        .await?;
    let downstream = Client::connect(&greeter.local_addr().to_string()).await?;
    let relay = Server::builder()
        .serve(RelayServer::new(ExampleRelay::new(downstream)))
        .start()
        .await?;

    let consumer = RelayClient::connect(&relay.local_addr().to_string()).await?;
    let answer = consumer.relay("trace".into()).await?;
    println!("{answer:?}: every span above shares one trace_id");

    relay.shutdown().await?;
    greeter.shutdown().await?;
    Ok(())
}
