//! `tonic`: the same echo as a unary gRPC call (`bench.Echo/Echo`), one HTTP/2 connection,
//! `TCP_NODELAY` on both ends, every other setting tonic's default.

use std::net::SocketAddr;

use bytes::Bytes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
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
