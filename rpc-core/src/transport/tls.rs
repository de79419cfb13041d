//! TLS for the consumer's connections ([`ClientTls`]: trust roots, an optional client
//! certificate, the name to verify), and the PEM loading both ends share.
//!
//! rustls runs with the `ring` provider, chosen explicitly, so another crate in the same
//! process enabling a second provider cannot make the choice ambiguous.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::RpcError;

/// How a consumer speaks TLS to providers (`client.tls.*`).
///
/// Providers whose registry node says `"transport": "tls"` are always dialled with TLS; a
/// client with trust roots also dials direct addresses ([`ClientBuilder::connect`]) with TLS.
/// The provider's certificate must be signed by one of the roots and name the address
/// dialled (its IP as a subject alternative name), or [`server_name`](Self::server_name).
///
/// [`ClientBuilder::connect`]: crate::ClientBuilder::connect
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM files of the CA certificates providers' certificates are checked against
    /// (`client.tls.ca`, `RPC_TLS_CA`).
    pub ca: Vec<PathBuf>,
    /// PEM file of this client's certificate chain, for providers that require one
    /// (`client.tls.cert`, `RPC_TLS_CLIENT_CERT`).
    pub cert: Option<PathBuf>,
    /// PEM file of the key of [`cert`](Self::cert) (`client.tls.key`, `RPC_TLS_CLIENT_KEY`).
    pub key: Option<PathBuf>,
    /// The name providers' certificates must carry, instead of the dialled address
    /// (`client.tls.server_name`, `RPC_TLS_SERVER_NAME`).
    pub server_name: Option<String>,
    /// Also trust the platform's CA certificates (`client.tls.platform_roots`,
    /// `RPC_TLS_PLATFORM_ROOTS`): the operating system's store, or the files `SSL_CERT_FILE`
    /// and `SSL_CERT_DIR` name. Off by default: providers' certificates usually come from a
    /// private CA, and trusting every public one would accept any of them.
    pub platform_roots: bool,
}

impl ClientTls {
    /// Whether anything is set: a client with no TLS settings dials plain TCP only.
    pub fn is_configured(&self) -> bool {
        !self.ca.is_empty()
            || self.platform_roots
            || self.cert.is_some()
            || self.server_name.is_some()
    }
}

/// A TLS setting that cannot be used: a missing or unreadable file, no PEM item in it, a
/// key that does not match its certificate. Names the setting and the file, never a key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct TlsConfigError {
    /// The setting at fault, e.g. `client.tls.ca`.
    pub setting: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl TlsConfigError {
    pub(crate) fn new(setting: &'static str, message: impl Into<String>) -> TlsConfigError {
        TlsConfigError {
            setting,
            message: message.into(),
        }
    }
}

/// The certificates of a PEM file (one or more).
pub(crate) fn load_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsConfigError::new(setting, format!("cannot read {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsConfigError::new(
            setting,
            format!("{shown} holds no PEM certificate"),
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file. Errors name the file only: the key's bytes never leave.
pub(crate) fn load_key(
    setting: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        let reason = match e {
            rustls::pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "no PEM private key in it".to_string(),
        };
        TlsConfigError::new(setting, format!("cannot read {}: {reason}", path.display()))
    })
}

/// A store of the CA certificates of `paths`.
pub(crate) fn load_roots(
    setting: &'static str,
    paths: &[PathBuf],
) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for path in paths {
        for cert in load_certs(setting, path)? {
            roots
                .add(cert)
                .map_err(|e| TlsConfigError::new(setting, format!("{}: {e}", path.display())))?;
        }
    }
    Ok(roots)
}

/// Adds the platform's CA certificates to `roots`; fails if none is usable and `roots` has
/// none either.
fn add_platform_roots(roots: &mut RootCertStore) -> Result<(), TlsConfigError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "a platform CA certificate could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 && roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(TlsConfigError::new(
            "client.tls.platform_roots",
            format!("the platform has no usable CA certificate ({why}; {ignored} unparsable)"),
        ));
    }
    Ok(())
}

/// The crypto provider both ends use.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The consumer's TLS connector, built once per client.
#[derive(Clone)]
pub(crate) struct TlsConnect {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnect {
    /// Loads `tls`'s files and builds the connector.
    pub(crate) fn new(tls: &ClientTls) -> Result<TlsConnect, TlsConfigError> {
        if tls.ca.is_empty() && !tls.platform_roots {
            return Err(TlsConfigError::new(
                "client.tls.ca",
                "no trust roots: give the CA certificate(s) that signed the providers' certificates, or trust the platform's (client.tls.platform_roots)",
            ));
        }
        let mut roots = load_roots("client.tls.ca", &tls.ca)?;
        if tls.platform_roots {
            add_platform_roots(&mut roots)?;
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::new("client.tls", e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    load_certs("client.tls.cert", cert)?,
                    load_key("client.tls.key", key)?,
                )
                .map_err(|e| TlsConfigError::new("client.tls.key", e.to_string()))?,
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsConfigError::new(
                    "client.tls.key",
                    "client.tls.cert is set but its key is not",
                ))
            }
            (None, Some(_)) => {
                return Err(TlsConfigError::new(
                    "client.tls.cert",
                    "client.tls.key is set but its certificate is not",
                ))
            }
        };
        let server_name = match &tls.server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                TlsConfigError::new(
                    "client.tls.server_name",
                    format!("{name:?} is not a DNS name or an IP address"),
                )
            })?),
            None => None,
        };
        Ok(TlsConnect {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake on a connected socket.
    pub(crate) async fn handshake(
        &self,
        addr: SocketAddr,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, RpcError> {
        let name = self
            .server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| RpcError::Tls {
                addr,
                reason: handshake_failure(&e),
            })
    }
}

/// Says why a handshake failed, naming the likely cause.
fn handshake_failure(error: &std::io::Error) -> String {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidMessage(_)) => {
            "the provider did not answer with TLS: it serves plaintext on this port (its registry node has no \"transport\": \"tls\")".to_string()
        }
        Some(e) => format!("TLS handshake failed: {e}"),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the provider closed the connection during the TLS handshake (does it serve plaintext?)".to_string()
        }
        None => format!("TLS handshake failed: {error}"),
    }
}

/// Whether a read error came from TLS (an alert from the provider, a bad record), and what
/// it says: the provider refused this client's certificate, or none was sent.
pub(crate) fn tls_read_failure(error: &std::io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::AlertReceived(alert) => format!(
            "the provider refused the TLS session ({alert:?}): it may require a client certificate (client.tls.cert) signed by a CA it trusts"
        ),
        other => format!("TLS error: {other}"),
    })
}

/// Whether the first bytes a plain connection got open a TLS record (an alert or a
/// handshake): the provider serves TLS.
pub(crate) fn looks_like_tls(first: [u8; 2]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03])
}
