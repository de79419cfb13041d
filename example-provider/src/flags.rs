//! Command-line flags for TLS and caller authentication, shared by the example binaries:
//! [`ConsumerSecurity`] for whatever calls (example-consumer, a relay's downstream calls)
//! and [`ProviderSecurity`] for the serving side. Flags override `rpc.toml` and `RPC_*`.

use std::path::PathBuf;

use rpc_core::client::AuthToken;
use rpc_core::RpcConfig;

/// A caller's TLS trust roots, certificate and bearer token.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConsumerSecurity {
    /// PEM file of CA certificates providers are checked against; repeatable
    /// [client.tls.ca / RPC_TLS_CA].
    #[arg(long = "tls-ca", value_name = "PEM")]
    pub tls_ca: Vec<PathBuf>,
    /// This client's certificate chain (PEM), for providers that require one
    /// [client.tls.cert / RPC_TLS_CLIENT_CERT].
    #[arg(long = "tls-cert", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM) [client.tls.key / RPC_TLS_CLIENT_KEY].
    #[arg(long = "tls-key", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name providers' certificates must carry instead of the dialled address
    /// [client.tls.server_name / RPC_TLS_SERVER_NAME].
    #[arg(long = "tls-server-name", value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Bearer token sent as `authorization: Bearer <token>` [client.auth.token /
    /// RPC_AUTH_TOKEN]; prefer --auth-token-file, which keeps it out of `ps`.
    #[arg(long = "auth-token", value_name = "TOKEN", value_parser = parse_token)]
    pub auth_token: Option<AuthToken>,
    /// File whose first line is the bearer token [client.auth.token_file / RPC_AUTH_TOKEN_FILE].
    #[arg(long = "auth-token-file", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
}

fn parse_token(text: &str) -> Result<AuthToken, String> {
    Ok(AuthToken::new(text))
}

impl ConsumerSecurity {
    /// Puts the flags given into `config`.
    pub fn apply(&self, config: &mut RpcConfig) -> Result<(), String> {
        if !self.tls_ca.is_empty() {
            config.client_tls.ca = self.tls_ca.clone();
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.client_tls.cert = Some(cert.clone());
            config.client_tls.key = Some(key.clone());
        }
        if let Some(name) = &self.tls_server_name {
            config.client_tls.server_name = Some(name.clone());
        }
        if let Some(token) = &self.auth_token {
            config.auth_token = Some(token.clone());
        }
        if let Some(path) = &self.auth_token_file {
            let token = AuthToken::from_file(path)
                .map_err(|e| format!("bad --auth-token-file {}: {e}", path.display()))?;
            config.auth_token = Some(token);
        }
        Ok(())
    }
}

/// A provider's certificate, client CA and tokens file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProviderSecurity {
    /// The provider's certificate chain (PEM): serve TLS only [server.tls.cert / RPC_TLS_CERT].
    #[arg(long = "tls-cert", value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM) [server.tls.key / RPC_TLS_KEY].
    #[arg(long = "tls-key", value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS
    /// [server.tls.client_ca / RPC_TLS_CLIENT_CA].
    #[arg(long = "tls-client-ca", value_name = "PEM", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// CA certificates (PEM) the relay's downstream calls check providers against;
    /// repeatable [client.tls.ca / RPC_TLS_CA].
    #[arg(long = "tls-ca", value_name = "PEM")]
    pub tls_ca: Vec<PathBuf>,
    /// Tokens file, one `caller-name token` per line, re-read when it changes: calls need
    /// `authorization: Bearer <token>` [server.auth.tokens_file / RPC_AUTH_TOKENS_FILE].
    #[arg(long = "auth-tokens-file", value_name = "FILE")]
    pub auth_tokens_file: Option<PathBuf>,
}

impl ProviderSecurity {
    /// Puts the flags given into `config`.
    pub fn apply(&self, config: &mut RpcConfig) {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls_cert = Some(cert.clone());
            config.tls_key = Some(key.clone());
        }
        if let Some(ca) = &self.tls_client_ca {
            config.tls_client_ca = Some(ca.clone());
        }
        if !self.tls_ca.is_empty() {
            config.client_tls.ca = self.tls_ca.clone();
        }
        if let Some(file) = &self.auth_tokens_file {
            config.auth_tokens_file = Some(file.clone());
        }
    }
}
