//! `tonic`: the same echo as a unary gRPC call (`bench.Echo/Echo`), one HTTP/2 connection,
//! `TCP_NODELAY` on both ends, every other setting tonic's default.

use std::net::SocketAddr;

use bytes::Bytes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::{BenchError, EchoClient, ServerGuard};

/// Code generated from `proto/echo.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("bench");
}

use pb::echo_client::EchoClient as GrpcClient;
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

/// The echo implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoImpl;

#[tonic::async_trait]
impl Echo for EchoImpl {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            data: request.into_inner().data,
        }))
    }
}

/// Starts the echo server.
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let incoming = TcpIncoming::bind(listen.parse()?)?.with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    let task = tokio::spawn(
        Server::builder()
            .add_service(EchoServer::new(EchoImpl))
            .serve_with_incoming(incoming),
    );
    Ok((addr, Box::new(task.abort_handle())))
}

/// Starts the echo server with TLS (`tonic+tls`), on the certificates `rpc+tls` uses.
pub async fn serve_tls(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let dir = super::rpc_tls::cert_dir()?;
    let identity = Identity::from_pem(
        std::fs::read(dir.join("server.pem"))?,
        std::fs::read(dir.join("server.key"))?,
    );
    let incoming = TcpIncoming::bind(listen.parse()?)?.with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(identity))?
        .add_service(EchoServer::new(EchoImpl));
    let task = tokio::spawn(server.serve_with_incoming(incoming));
    Ok((addr, Box::new(task.abort_handle())))
}

/// Connects one TLS channel to `addr`, trusting the run's CA.
pub async fn connect_tls(addr: SocketAddr) -> Result<TonicClient, BenchError> {
    let ca = std::fs::read(super::rpc_tls::cert_dir()?.join("ca.pem"))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(addr.ip().to_string());
    let channel = Channel::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(TonicClient(GrpcClient::new(channel)))
}

/// A tonic client over one HTTP/2 connection.
#[derive(Clone)]
pub struct TonicClient(GrpcClient<Channel>);

/// Connects one channel (one HTTP/2 connection) to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<TonicClient, BenchError> {
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(TonicClient(GrpcClient::new(channel)))
}

impl EchoClient for TonicClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        let mut client = self.0.clone();
        let reply = client
            .echo(EchoRequest {
                data: payload.to_vec(),
            })
            .await?;
        Ok(reply.into_inner().data.len())
    }
}
