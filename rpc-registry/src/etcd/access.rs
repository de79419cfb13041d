//! How an etcd client gets in: TLS (`https://`, CA, client certificate) and user
//! authentication, through etcd-client's own support.
//!
//! Authentication is done per endpoint on its first request rather than when the client is
//! made, so a registry client still starts while etcd is down (as without credentials), and
//! a wrong password fails the first request with [`RegistryError::Refused`], naming the
//! endpoint. etcd's auth tokens expire (`--auth-token-ttl`); etcd-client authenticates again
//! and retries when a request (a stream's opening included) meets an expired token
//! (`with_auto_token_refresh`). Streams already open keep working: etcd checks the token
//! when a stream opens, not on each message.

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use rpc_core::registry::RegistryError;
use tonic::Code;

use super::error::BACKEND;
use crate::options::RegistryOptions;
use crate::security::RegistryTls;

/// `https` with TLS, else `http`.
pub(crate) fn scheme(options: &RegistryOptions) -> &'static str {
    if options.tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Adds TLS (read from the PEM files now) and token refresh to `connect_options`.
pub(crate) fn secure(
    connect_options: ConnectOptions,
    options: &RegistryOptions,
    endpoints: &str,
) -> Result<ConnectOptions, RegistryError> {
    let connect_options = connect_options.with_auto_token_refresh(true);
    let Some(tls) = &options.tls else {
        return Ok(connect_options);
    };
    Ok(connect_options.with_tls(tls_options(tls, endpoints)?))
}

fn tls_options(tls: &RegistryTls, endpoints: &str) -> Result<TlsOptions, RegistryError> {
    let read = |what: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| RegistryError::Unavailable {
            registry: BACKEND,
            endpoints: endpoints.to_string(),
            message: format!("cannot read the TLS {what} {}: {e}", path.display()),
        })
    };
    let mut options = TlsOptions::new();
    if let Some(ca) = &tls.ca {
        options = options.ca_certificate(Certificate::from_pem(read("CA", ca)?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.identity(Identity::from_pem(
            read("certificate", cert)?,
            read("key", key)?,
        ));
    }
    Ok(options)
}

/// Whether etcd refused the user name or password (as opposed to being unreachable).
pub(crate) fn is_auth_refused(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                Code::InvalidArgument | Code::FailedPrecondition | Code::PermissionDenied
            ) || status.message().contains("authentication failed")
        }
        _ => false,
    }
}

/// Whether etcd refused a request for coming without a user ("user name is empty"): auth is
/// enabled and this client has no credentials.
pub(crate) fn needs_user(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.message().contains("user name is empty"))
}
