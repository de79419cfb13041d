//! `rpc+tls`: this framework over TLS (rustls, ring), the same echo as `rpc`. The parent makes
//! a CA and a certificate for 127.0.0.1 once per run and hands their directory to the server
//! process in `RPC_BENCH_TLS_DIR`; the client trusts that CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rpc_core::server::ServerTls;
use rpc_core::{Client, Codec, Server};

use super::rpc::{EchoClient, EchoImpl, EchoServer};
use super::{BenchError, ServerGuard};

/// The environment variable naming the certificates' directory for the server process.
pub const TLS_DIR_ENV: &str = "RPC_BENCH_TLS_DIR";

/// The directory holding `ca.pem`, `server.pem` and `server.key`: the one the parent named,
/// or, in the parent, a new one made on first use.
pub fn cert_dir() -> Result<&'static Path, BenchError> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| match std::env::var_os(TLS_DIR_ENV) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => make_certs().map_err(|e| e.to_string()),
    });
    match dir {
        Ok(dir) => Ok(dir.as_path()),
        Err(e) => Err(format!("cannot make the TLS certificates: {e}").into()),
    }
}

/// The directory this process makes its certificates in, when the parent did not name one.
fn own_dir() -> PathBuf {
    std::env::temp_dir().join(format!("rpc-bench-tls-{}", std::process::id()))
}

/// Removes the certificates' directory if this process made it: the parent calls it when the
/// run ends, so no run leaves its keys behind in the temp directory.
pub fn remove_own_certs() {
    if std::env::var_os(TLS_DIR_ENV).is_none() {
        let dir = own_dir();
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("rpc-bench: cannot remove {}: {e}", dir.display());
            }
        }
    }
}

fn make_certs() -> Result<PathBuf, BenchError> {
    let dir = own_dir();
    std::fs::create_dir_all(&dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rpc-bench CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(dir)
}

/// Starts the echo server with TLS (no registry).
pub async fn serve(listen: &str) -> Result<(SocketAddr, ServerGuard), BenchError> {
    let dir = cert_dir()?;
    let handle = Server::builder()
        .bind(listen)
        .tls(ServerTls::new(
            dir.join("server.pem"),
            dir.join("server.key"),
        ))
        .serve(EchoServer::new(EchoImpl))
        .start()
        .await?;
    Ok((handle.local_addr(), Box::new(handle)))
}

/// Connects a TLS client with `connections` connections to `addr`, calling in `codec`.
pub async fn connect(
    addr: SocketAddr,
    connections: usize,
    codec: Option<Codec>,
) -> Result<EchoClient, BenchError> {
    let builder = Client::builder().tls_ca(cert_dir()?.join("ca.pem"));
    super::rpc::connect_with(builder, addr, connections, codec).await
}
