//! Connections: the frame writer both ends share, and the consumer's multiplexed
//! [`Connection`] to one provider with the [`Pool`] that keeps them by address.
//!
//! This layer knows calls ([`crate::call`]) and frames ([`crate::protocol`]); it knows nothing
//! of registries, balancing or retries.

mod connection;
mod pool;
mod writer;

pub(crate) use pool::Pool;
pub(crate) use writer::FrameWriter;
