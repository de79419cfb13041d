//! `rpc`: this framework, with its default codec (or the one `--codec` names) and default client settings
//! (10 s call deadline), through the stub that `#[rpc_core::service]` generates.

use std::net::SocketAddr;

use std::sync::Arc;

use bytes::Bytes;
use rpc_core::{CallOptions, Client, ClientBuilder, Codec, Server};

use super::{BenchError, EchoClient as BenchClient, ServerGuard};

/// The benchmark's echo service.
#[rpc_core::service(name = "bench.Echo", version = "1.0.0")]
pub trait Echo {
    /// Returns `data` unchanged.
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
}

/// The echo implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// Starts the echo server (no registry).
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let handle = Server::builder()
        .bind(listen)
        .serve(EchoServer::new(EchoImpl))
        .start()
        .await?;
    Ok((handle.local_addr(), Box::new(handle)))
}

/// Starts the echo server with the Prometheus recorder installed and the admin endpoint
/// serving it on a free loopback port: what `--admin` costs a provider.
pub async fn serve_with_metrics(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let admin = rpc_core::admin::AdminEndpoint::start_with_prometheus("127.0.0.1:0")
        .await
        .map_err(BenchError::from)?;
    let handle = Server::builder()
        .bind(listen)
        .serve(EchoServer::new(EchoImpl))
        .start()
        .await?;
    admin.attach_server(handle.control());
    Ok((handle.local_addr(), Box::new((handle, admin))))
}

/// Connects a client with `connections` multiplexed connections to `addr`, calling in
/// `codec` (`None`: the client's default).
pub async fn connect(
    addr: SocketAddr,
    connections: usize,
    codec: Option<Codec>,
) -> Result<EchoClient, BenchError> {
    connect_with(Client::builder(), addr, connections, codec).await
}

/// [`connect`] from a builder with settings of its own (`rpc+tls` adds its CA).
pub async fn connect_with(
    mut builder: ClientBuilder,
    addr: SocketAddr,
    connections: usize,
    codec: Option<Codec>,
) -> Result<EchoClient, BenchError> {
    if let Some(codec) = codec {
        builder = builder.codec(codec);
    }
    let client = builder
        .connections_per_address(connections)
        .connect(&addr.to_string())
        .await?;
    Ok(EchoClient::new(client))
}

impl BenchClient for EchoClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        // The generated stub's inherent `echo` (inherent methods win over trait methods).
        let reply = EchoClient::echo(self, payload.to_vec()).await?;
        Ok(reply.len())
    }
}

/// An echo client that sends two 32-byte metadata entries with every call (`rpc+meta`).
#[derive(Clone)]
pub struct MetadataEchoClient {
    stub: EchoClient,
    options: Arc<CallOptions>,
}

impl EchoClient {
    /// This client, sending `bench-a` and `bench-b` (32 bytes each) with every call.
    pub fn with_metadata(self) -> MetadataEchoClient {
        let options = CallOptions::new()
            .with_metadata("bench-a", vec![b'a'; 32])
            .with_metadata("bench-b", vec![b'b'; 32]);
        MetadataEchoClient {
            stub: self,
            options: Arc::new(options),
        }
    }
}

impl BenchClient for MetadataEchoClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        let reply = self
            .stub
            .call_with(&self.options)
            .echo(payload.to_vec())
            .await?;
        Ok(reply.len())
    }
}
