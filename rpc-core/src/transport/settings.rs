//! [`Settings`]: how the consumer opens and watches its connections.

use std::time::Duration;

/// Connection settings shared by every connection of one client.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// The largest frame either way: replies over it close the connection, requests over it
    /// are refused before sending.
    pub max_frame: usize,
    /// How often a connection with calls in flight is pinged; zero turns health checks off.
    pub ping_interval: Duration,
    /// How long a connection with calls in flight may stay silent (no reply, no pong) before
    /// it is declared dead.
    pub ping_timeout: Duration,
    /// Delays before reconnecting to an address whose last connect failed.
    pub reconnect_backoff: crate::backoff::Backoff,
}
