//! Errors from starting or stopping a server.

use crate::registry::RegistryError;

/// Why a server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// A setting that cannot work.
    #[error("bad server setting {setting}: {message}")]
    BadConfig {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Two services with the same key were added.
    #[error("service {0} is served twice")]
    DuplicateService(String),
    /// Offline or online was asked for while the server is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// Registering or deregistering with the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}
