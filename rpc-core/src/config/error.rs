//! Why a configuration could not be loaded.

use std::path::PathBuf;

/// Why a configuration could not be loaded. Each variant names the key and the form expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key this version does not know (often a typo).
    #[error("unknown config key {key:?} in {origin}; known keys: {known}")]
    UnknownKey {
        /// The key, dotted (`client.balancer`).
        key: String,
        /// The file or `environment`.
        origin: String,
        /// Every known key.
        known: String,
    },
    /// A value of the wrong form.
    #[error("bad value for {key} in {origin}: {value}; expected {expected}")]
    BadValue {
        /// The key, dotted, with its environment variable.
        key: String,
        /// The file or `environment`.
        origin: String,
        /// The value given.
        value: String,
        /// The form the key takes.
        expected: String,
    },
}
