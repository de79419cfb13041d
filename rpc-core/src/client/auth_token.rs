//! [`AuthToken`]: the bearer token a client sends, kept out of logs and `Debug`.

use std::fmt;
use std::path::Path;

/// A caller's bearer token (`client.auth.token`, `RPC_AUTH_TOKEN`), sent with every call as
/// `authorization: Bearer <token>`. `Debug` and `Display` show `***`, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    /// A token; surrounding whitespace is dropped.
    pub fn new(token: impl Into<String>) -> AuthToken {
        AuthToken(token.into().trim().to_string())
    }

    /// The token of a file (its first line), e.g. a mounted secret. Errors name the file
    /// and the I/O failure, never its contents.
    pub fn from_file(path: &Path) -> Result<AuthToken, std::io::Error> {
        let text = std::fs::read_to_string(path)?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds no token", path.display()),
            ));
        }
        Ok(AuthToken(token.to_string()))
    }

    /// Whether the token is empty (nothing would be sent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `authorization` metadata value: `Bearer <token>`.
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl fmt::Display for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
