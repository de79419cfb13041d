//! The security settings' part of [`RpcConfig`]: TLS and caller authentication, checked
//! together and applied to the builders.

use super::RpcConfig;
use crate::client::ClientBuilder;
use crate::server::{ServerAuth, ServerBuilder, ServerTls};

impl RpcConfig {
    /// A setting that needs another that is not set: `(the one set, the one missing)`.
    pub(super) fn half_set(&self) -> Option<(&'static str, &'static str)> {
        let tls = self.tls_cert.is_some() || self.tls_client_ca.is_some();
        if tls && self.tls_key.is_none() {
            return Some((
                "server.tls.cert (RPC_TLS_CERT)",
                "server.tls.key (RPC_TLS_KEY)",
            ));
        }
        if self.tls_key.is_some() && self.tls_cert.is_none() {
            return Some((
                "server.tls.key (RPC_TLS_KEY)",
                "server.tls.cert (RPC_TLS_CERT)",
            ));
        }
        if self.client_tls.cert.is_some() != self.client_tls.key.is_some() {
            return Some(("client.tls.cert / client.tls.key", "both of them"));
        }
        if !self.auth_allow.is_empty() && self.auth_tokens_file.is_none() {
            return Some((
                "server.auth.allow (RPC_AUTH_ALLOW)",
                "server.auth.tokens_file (RPC_AUTH_TOKENS_FILE)",
            ));
        }
        None
    }

    /// `builder` with the provider's TLS and caller authentication, when set.
    pub(super) fn secure_server(&self, builder: ServerBuilder) -> ServerBuilder {
        let builder = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => builder.tls(ServerTls {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => builder,
        };
        match &self.auth_tokens_file {
            Some(file) => builder.auth(ServerAuth {
                tokens_file: file.clone(),
                allow: self.auth_allow.clone(),
            }),
            None => builder,
        }
    }

    /// `builder` with the consumer's TLS and bearer token, when set.
    pub(super) fn secure_client(&self, builder: ClientBuilder) -> ClientBuilder {
        let builder = builder.tls(self.client_tls.clone());
        match &self.auth_token {
            Some(token) => builder.auth_token(token.clone()),
            None => builder,
        }
    }
}
