//! TLS on the provider's port ([`ServerTls`]): its certificate and key, and optionally the
//! CA whose client certificates it requires (mutual TLS).
//!
//! A plaintext client on a TLS port gets a TLS alert record back and the connection closes:
//! its first bytes are checked before the handshake, so it fails at once with an error that
//! says the provider requires TLS, instead of waiting for a handshake that never comes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::peer_name::common_name;
use super::warn_limit::WarnLimit;
use crate::transport::{load_certs, load_key, load_roots, tls_provider, TlsConfigError};

/// The provider's TLS settings (`server.tls.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM file of the provider's certificate chain (`server.tls.cert`, `RPC_TLS_CERT`).
    pub cert: PathBuf,
    /// PEM file of its private key (`server.tls.key`, `RPC_TLS_KEY`).
    pub key: PathBuf,
    /// PEM file of the CA(s) whose client certificates are required; `None` accepts any
    /// client (`server.tls.client_ca`, `RPC_TLS_CLIENT_CA`).
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// TLS with a certificate and its key, client certificates not required.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerTls {
        ServerTls {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        }
    }

    /// Requires client certificates signed by the CA(s) in `path` (mutual TLS).
    pub fn client_ca(mut self, path: impl Into<PathBuf>) -> ServerTls {
        self.client_ca = Some(path.into());
        self
    }

    /// Loads the files and builds the acceptor; errors name the setting and the file.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, TlsConfigError> {
        let provider = tls_provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::new("server.tls", e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = load_roots("server.tls.client_ca", std::slice::from_ref(path))?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsConfigError::new("server.tls.client_ca", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(
                load_certs("server.tls.cert", &self.cert)?,
                load_key("server.tls.key", &self.key)?,
            )
            .map_err(|e| TlsConfigError::new("server.tls.key", e.to_string()))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

static PLAINTEXT: WarnLimit = WarnLimit::new();
static HANDSHAKE: WarnLimit = WarnLimit::new();

/// A fatal `unexpected_message` alert: what a plaintext client on the TLS port gets back.
const UNEXPECTED_MESSAGE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a];

/// Runs the handshake within `timeout`; `None` (logged, rate-limited) when it fails or the
/// client speaks plaintext. With it, the common name of the client's verified certificate
/// (mutual TLS), if it sent one.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(TlsStream<TcpStream>, Option<Arc<str>>)> {
    let accepted = tokio::time::timeout(timeout, async {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        if first[0] != 0x16 {
            if let Some(suppressed) = PLAINTEXT.allow() {
                tracing::warn!(%peer, suppressed, "a plaintext client reached this TLS port; closing connection");
            }
            let _ = stream.write_all(&UNEXPECTED_MESSAGE_ALERT).await;
            let _ = stream.shutdown().await;
            return None;
        }
        match acceptor.accept(stream).await {
            Ok(tls) => {
                let name = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| common_name(leaf))
                    .map(Arc::from);
                Some((tls, name))
            }
            Err(e) => {
                if let Some(suppressed) = HANDSHAKE.allow() {
                    tracing::info!(%peer, error = %e, suppressed, "TLS handshake failed");
                }
                None
            }
        }
    })
    .await;
    accepted.ok().flatten()
}
