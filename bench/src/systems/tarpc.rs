//! `tarpc`: the same echo on tarpc, over `tarpc::serde_transport::tcp` with tokio-serde's
//! bincode codec, requests handled concurrently (one task per request, as tarpc's README does).
//! `TCP_NODELAY` is set on both ends, as the other systems do.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::{future, StreamExt};
use tarpc::client;
use tarpc::context;
use tarpc::serde_transport::tcp;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

use super::{BenchError, EchoClient, ServerGuard};

/// The benchmark's echo service for tarpc.
#[tarpc::service]
pub trait TarpcEcho {
    /// Returns `data` unchanged.
    async fn echo(data: Vec<u8>) -> Vec<u8>;
}

/// The echo implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoImpl;

impl TarpcEcho for EchoImpl {
    async fn echo(self, _: context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// The largest frame either side accepts, as for the other systems.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Starts the echo server.
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let mut listener = tcp::listen(listen, Bincode::default).await?;
    listener.config_mut().max_frame_length(MAX_FRAME);
    let addr = listener.local_addr();
    let task = tokio::spawn(
        listener
            .filter_map(|accepted| future::ready(accepted.ok()))
            .for_each(|transport| {
                let _ = transport.get_ref().set_nodelay(true);
                let channel = BaseChannel::with_defaults(transport);
                tokio::spawn(channel.execute(EchoImpl.serve()).for_each(|response| {
                    tokio::spawn(response);
                    future::ready(())
                }));
                future::ready(())
            }),
    );
    Ok((addr, Box::new(task.abort_handle())))
}

/// Connects one tarpc client (one connection) to `addr`.
pub async fn connect(addr: SocketAddr) -> Result<TarpcEchoClient, BenchError> {
    let mut connecting = tcp::connect(addr, Bincode::default);
    connecting.config_mut().max_frame_length(MAX_FRAME);
    let transport = connecting.await?;
    transport.get_ref().set_nodelay(true)?;
    Ok(TarpcEchoClient::new(client::Config::default(), transport).spawn())
}

impl EchoClient for TarpcEchoClient {
    async fn echo(&self, payload: &Bytes) -> Result<usize, BenchError> {
        let reply = TarpcEchoClient::echo(self, context::current(), payload.to_vec()).await?;
        Ok(reply.len())
    }
}
