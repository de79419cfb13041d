//! The systems under test. Each has a server (started inside a `rpc-bench serve` subprocess)
//! and a client (driven by the parent process), and all serve the same echo: the reply is the
//! request's payload.

pub mod raw;
pub mod rpc;
pub mod rpc_tls;
pub mod tarpc;
pub mod tonic;
#[cfg(feature = "volo")]
pub mod volo;

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;

/// Errors of the benchmark harness: reported, then the run exits non-zero.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Which system a server or client belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum System {
    /// Tokio TCP echo with the same 4-byte length prefix and no RPC layer.
    Raw,
    /// This framework (`rpc-core`), bincode codec.
    Rpc,
    /// tarpc over its bincode serde transport on TCP.
    Tarpc,
    /// This framework with a Prometheus recorder installed and the admin endpoint on in the
    /// server process (opt-in: `--systems rpc,rpc-metrics` measures their cost side by side).
    RpcMetrics,
    /// This framework with two 32-byte metadata entries on every call (opt-in:
    /// `--systems rpc,rpc+meta` measures what the metadata block costs).
    #[value(name = "rpc+meta")]
    RpcMeta,
    /// This framework over TLS (rustls, ring), opt-in: `--systems rpc,rpc+tls` measures what
    /// TLS costs side by side.
    #[value(name = "rpc+tls")]
    RpcTls,
    /// tonic unary gRPC.
    Tonic,
    /// tonic unary gRPC over TLS (rustls, ring), opt-in beside `rpc+tls`.
    #[value(name = "tonic+tls")]
    TonicTls,
    /// CloudWeGo Volo's Thrift, multiplexed client and server (with the `volo` feature).
    #[cfg(feature = "volo")]
    Volo,
}

impl System {
    /// Every system, in report order.
    #[cfg(not(feature = "volo"))]
    pub const ALL: &[System] = &[System::Raw, System::Rpc, System::Tarpc, System::Tonic];
    /// Every system, in report order.
    #[cfg(feature = "volo")]
    pub const ALL: &[System] = &[
        System::Raw,
        System::Rpc,
        System::Tarpc,
        System::Tonic,
        System::Volo,
    ];

    /// The name used on the command line, in tables and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Rpc => "rpc",
            System::RpcMetrics => "rpc-metrics",
            System::RpcMeta => "rpc+meta",
            System::RpcTls => "rpc+tls",
            System::Tarpc => "tarpc",
            System::Tonic => "tonic",
            System::TonicTls => "tonic+tls",
            #[cfg(feature = "volo")]
            System::Volo => "volo",
        }
    }

    /// Whether this is one of this framework's variants (codecs and connection counts apply).
    pub fn is_rpc(self) -> bool {
        matches!(
            self,
            System::Rpc | System::RpcMetrics | System::RpcMeta | System::RpcTls
        )
    }

    /// Whether the client can spread calls over more than one connection.
    pub fn supports_connections(self, connections: usize) -> bool {
        connections == 1 || matches!(self, System::Raw) || self.is_rpc()
    }
}

/// Keeps a started server alive; dropping it may stop the server.
pub type ServerGuard = Box<dyn Any + Send>;

/// Starts `system`'s echo server on `listen` inside the current Tokio runtime and returns the
/// bound address.
pub async fn serve(system: System, listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    match system {
        System::Raw => raw::serve(listen).await,
        System::Rpc | System::RpcMeta => rpc::serve(listen).await,
        System::RpcMetrics => rpc::serve_with_metrics(listen).await,
        System::RpcTls => rpc_tls::serve(listen).await,
        System::Tarpc => tarpc::serve(listen).await,
        System::Tonic => tonic::serve(listen).await,
        System::TonicTls => tonic::serve_tls(listen).await,
        #[cfg(feature = "volo")]
        System::Volo => volo::serve(listen).await,
    }
}

/// A client of one system's echo. Clones share the underlying connection(s).
pub trait EchoClient: Clone + Send + Sync + 'static {
    /// Sends `payload` and returns the length of the payload that came back.
    fn echo(&self, payload: &Bytes) -> impl Future<Output = Result<usize, BenchError>> + Send;
}
