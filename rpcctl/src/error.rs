//! The one error type of the tool: a message for the user, or the quiet end that follows a
//! closed stdout (`rpcctl watch | head -3`).

use std::fmt;

/// Why a command stopped early.
#[derive(Debug)]
pub enum CliError {
    /// Something went wrong; the message is printed as `rpcctl: <message>` and the exit
    /// code is 1.
    Failed(String),
    /// Whoever read stdout went away; the tool exits 0 without a word.
    StdoutClosed,
}

impl CliError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError::Failed(message.into())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Failed(message) => f.write_str(message),
            CliError::StdoutClosed => f.write_str("stdout was closed"),
        }
    }
}

impl From<rpc_core::RegistryError> for CliError {
    fn from(error: rpc_core::RegistryError) -> CliError {
        CliError::Failed(error.to_string())
    }
}

impl From<rpc_core::RpcError> for CliError {
    fn from(error: rpc_core::RpcError) -> CliError {
        CliError::Failed(error.to_string())
    }
}

impl From<rpc_core::registry::BadServiceKey> for CliError {
    fn from(error: rpc_core::registry::BadServiceKey) -> CliError {
        CliError::Failed(error.to_string())
    }
}

/// What commands return.
pub type CliResult<T = ()> = Result<T, CliError>;
