//! Caller authentication on a provider ([`ServerAuth`]): calls carry
//! `authorization: Bearer <token>`; the tokens file (`server.auth.tokens_file`, one
//! `caller-name token` per line, re-read when it changes) says which caller a token belongs
//! to, and an optional per-service allow-list says which callers may call a service.
//!
//! A missing or unknown token gets status 9 (unauthenticated); a known caller not on the
//! service's allow-list gets status 10 (permission denied). Pings are frames below calls and
//! stay unauthenticated. Each caller's failures are logged at most once a minute; tokens
//! never reach a log, an error or `Debug`.

mod layer;
mod reload;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub(crate) use layer::AuthLayer;

/// A provider's caller authentication (`server.auth.*`).
///
/// ```
/// use rpc_core::server::ServerAuth;
///
/// let auth = ServerAuth::tokens_file("/etc/rpc/tokens")
///     .allow("example.Admin", ["ops"])                 // every version
///     .allow("example.Greeter:2.0.0", ["web", "ops"]); // one version
/// assert!(auth.allow.contains_key("example.Admin"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerAuth {
    /// The tokens file: one `caller-name token` per line; `#` starts a comment. Re-read
    /// when it changes (`server.auth.tokens_file`, `RPC_AUTH_TOKENS_FILE`).
    pub tokens_file: PathBuf,
    /// Service (`name`, or `name:version` for one version) → the callers allowed to call
    /// it. A service not listed may be called by every authenticated caller
    /// (`server.auth.allow`, `RPC_AUTH_ALLOW`).
    pub allow: BTreeMap<String, BTreeSet<String>>,
}

impl ServerAuth {
    /// Authentication by the tokens of `path`, every caller allowed everywhere.
    pub fn tokens_file(path: impl Into<PathBuf>) -> ServerAuth {
        ServerAuth {
            tokens_file: path.into(),
            allow: BTreeMap::new(),
        }
    }

    /// Allows only `callers` to call `service` (`name` or `name:version`).
    pub fn allow<I, S>(mut self, service: impl Into<String>, callers: I) -> ServerAuth
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow
            .entry(service.into())
            .or_default()
            .extend(callers.into_iter().map(Into::into));
        self
    }

    /// Parses an allow-list in its text form, `service=caller,caller;service=caller`
    /// (`RPC_AUTH_ALLOW`, or each string of `server.auth.allow`).
    pub fn parse_allow(text: &str) -> Option<BTreeMap<String, BTreeSet<String>>> {
        let mut allow: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for rule in text.split(';').map(str::trim).filter(|r| !r.is_empty()) {
            let (service, callers) = rule.split_once('=')?;
            let service = service.trim();
            if service.is_empty() {
                return None;
            }
            let callers = callers
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            allow
                .entry(service.to_string())
                .or_default()
                .extend(callers);
        }
        Some(allow)
    }
}
