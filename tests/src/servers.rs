//! In-process example servers on 127.0.0.1, for end-to-end tests over real TCP.

use example_provider::{CalculatorServer, ExampleProvider, GreeterServer};
use rpc_core::{ServerBuilder, ServerHandle};

/// Starts the example Greeter and Calculator on a free loopback port, with whatever else
/// `builder` sets, and makes `whoami` report the bound address.
pub async fn example_server(builder: ServerBuilder) -> ServerHandle {
    let provider = ExampleProvider::default();
    let server = builder
        .bind("127.0.0.1:0")
        .serve(GreeterServer::new(provider.clone()))
        .serve(CalculatorServer::new(provider.clone()))
        .start()
        .await
        .unwrap_or_else(|e| panic!("example server did not start: {e}"));
    provider.set_address(server.local_addr().to_string());
    server
}

/// Writes a provider's tokens file as secret mounts do: beside it, then renamed over it, so
/// a reader never sees half a file.
pub fn write_tokens(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}
