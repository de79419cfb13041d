//! TLS and bearer-token flags for the commands that call providers (`call`, `ping`): global,
//! so they go before or after the subcommand.

use std::path::PathBuf;

use rpc_core::client::{AuthToken, ClientTls};
use rpc_core::ClientBuilder;

use crate::error::CliError;

/// How rpcctl reaches providers that serve TLS or require a token.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Security {
    /// PEM file of CA certificates providers are checked against; repeatable. Providers
    /// whose registry node says `"transport": "tls"` are always called with TLS.
    #[arg(long = "tls-ca", value_name = "PEM", global = true)]
    tls_ca: Vec<PathBuf>,
    /// This client's certificate chain (PEM), for providers that require one.
    #[arg(
        long = "tls-cert",
        value_name = "PEM",
        global = true,
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(
        long = "tls-key",
        value_name = "PEM",
        global = true,
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// The name providers' certificates must carry instead of the dialled address.
    #[arg(long = "tls-server-name", value_name = "NAME", global = true)]
    tls_server_name: Option<String>,
    /// Bearer token sent with calls (RPC_AUTH_TOKEN); prefer --auth-token-file.
    #[arg(long = "auth-token", value_name = "TOKEN", global = true, env = "RPC_AUTH_TOKEN",
          hide_env_values = true, value_parser = |s: &str| Ok::<_, String>(AuthToken::new(s)))]
    auth_token: Option<AuthToken>,
    /// File whose first line is the bearer token.
    #[arg(long = "auth-token-file", value_name = "FILE", global = true)]
    auth_token_file: Option<PathBuf>,
    /// Also trust the platform's CA certificates (the OS store, or SSL_CERT_FILE).
    #[arg(long = "tls-platform-roots", global = true)]
    tls_platform_roots: bool,
}

impl Security {
    /// A client builder with these settings.
    pub fn client_builder(&self) -> Result<ClientBuilder, CliError> {
        let builder = rpc_core::Client::builder().tls(ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
            platform_roots: self.tls_platform_roots,
        });
        let token = match &self.auth_token_file {
            Some(path) => Some(AuthToken::from_file(path).map_err(|e| {
                CliError::new(format!("bad --auth-token-file {}: {e}", path.display()))
            })?),
            None => self.auth_token.clone(),
        };
        Ok(match token {
            Some(token) => builder.auth_token(token),
            None => builder,
        })
    }
}
