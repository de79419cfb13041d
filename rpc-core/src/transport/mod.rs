//! Connections: the frame writer both ends share, and the consumer's multiplexed
//! [`Connection`] to one provider with the [`Pool`] that keeps them by address, each watched
//! for silence while calls are in flight.
//!
//! This layer knows calls ([`crate::call`]) and frames ([`crate::protocol`]); it knows nothing
//! of registries, balancing or retries.

mod connection;
mod expiry;
mod health;
mod liveness;
mod pool;
mod read_loop;
mod request;
mod settings;
mod tls;
mod writer;

pub(crate) use pool::Pool;
pub(crate) use request::check_request;
pub(crate) use settings::Settings;
pub(crate) use tls::{load_certs, load_key, load_roots, provider as tls_provider};
pub use tls::{ClientTls, TlsConfigError};
pub(crate) use writer::{Flush, FrameWriter};
