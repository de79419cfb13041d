//! Every default setting of the server and the client, written once: the builders and the
//! layered configuration ([`crate::config`]) both start from these.
//!
//! The cluster's settings (balancer, retries, ejection, directory) keep their defaults in
//! their own `Default` impls, which the configuration reads.

use std::time::Duration;

use crate::protocol::Codec;

/// Where a server listens unless told: loopback, a free port.
pub(crate) const LISTEN: &str = "127.0.0.1:0";
/// Connections a server serves at once.
pub(crate) const MAX_CONNECTIONS: usize = 10_000;
/// Calls in flight per server connection.
pub(crate) const MAX_IN_FLIGHT: usize = 10_000;
/// A server connection with no traffic and no call in flight for this long is closed.
pub(crate) const IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(300));
/// Unsent reply bytes above which a server connection stops reading requests.
pub(crate) const MAX_UNSENT_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of partially received frames a server buffers, over all its connections.
pub(crate) const MAX_PARTIAL_FRAME_BYTES: usize = 256 * 1024 * 1024;
/// How long a started frame may take to arrive, and a peer may leave replies unread while
/// the connection waits for it, before the connection is closed.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once from one IP address (`None`: only `MAX_CONNECTIONS`).
pub(crate) const MAX_CONNECTIONS_PER_ADDRESS: Option<usize> = None;
/// How long shutdown waits for in-flight calls.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// How long shutdown waits between deregistering and refusing calls.
pub(crate) const PROPAGATION_GRACE: Duration = Duration::from_secs(1);

/// A call's budget, retries included.
pub(crate) const DEADLINE: Option<Duration> = Some(Duration::from_secs(10));
/// How long opening a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Multiplexed connections per provider address.
pub(crate) const CONNECTIONS_PER_ADDRESS: usize = 1;
/// The body codec of requests.
pub(crate) const CODEC: Codec = Codec::Bincode;
/// How often a client connection with calls in flight is pinged.
pub(crate) const PING_INTERVAL: Duration = Duration::from_millis(500);
/// How long a client connection with calls in flight may stay silent before it is declared
/// dead: with the interval, a frozen provider is noticed within about 2 s.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(1500);
/// Delays before reconnecting to an address that refused: 50 ms doubling to 2 s, jittered.
pub(crate) const RECONNECT_BACKOFF: crate::backoff::Backoff =
    crate::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

/// How often a provider looks at its tokens file (`server.auth.tokens_file`) for changes.
pub(crate) const AUTH_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// An auth failure of one caller is logged at most once per this long.
pub(crate) const AUTH_LOG_INTERVAL: Duration = Duration::from_secs(60);
