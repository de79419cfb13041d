//! The serving side: one port, any number of services, concurrent handlers, deadlines,
//! registration with a registry, and graceful shutdown.

mod admission;
mod advertise;
mod auth;
mod builder;
mod connection;
mod context;
mod control;
mod dispatch;
mod error;
mod frame_reader;
mod in_flight;
mod layer;
pub mod metrics;
mod outbound;
mod peer_name;
mod registration;
mod stats;
mod tls;
mod warn_limit;
mod wire_text;

pub use advertise::{Advertise, BadAdvertise};
pub use auth::ServerAuth;
pub use builder::ServerBuilder;
pub use control::{ServerControl, ServingState};
pub use error::ServerError;
pub use layer::{Rejection, ServerRequest, ServerStack};
pub use stats::ServerStats;
pub use tls::ServerTls;

use std::net::SocketAddr;
use std::time::Duration;

use stats::StatsSource;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Entry point: `Server::builder()`.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with every default; see [`ServerBuilder`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// A running server. Dropping it leaves the server running; call
/// [`shutdown`](ServerHandle::shutdown) to stop it gracefully.
pub struct ServerHandle {
    local_addr: SocketAddr,
    /// Stops accepting and sends goaway on every connection.
    stop: CancellationToken,
    /// Aborts whatever is still in flight once the drain grace is over.
    force: CancellationToken,
    connections: TaskTracker,
    control: ServerControl,
    drain_grace: Duration,
    stats: StatsSource,
}

impl ServerHandle {
    /// The address the listener is bound to (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the server holds right now: connections, unsent reply bytes, partly received
    /// frame bytes.
    pub fn stats(&self) -> ServerStats {
        self.stats.snapshot()
    }

    /// The `host:port` published in the registry for consumers to dial (see
    /// [`ServerBuilder::advertise`]).
    pub fn published_addr(&self) -> String {
        self.control.registration().address()
    }

    /// Takes the server out of rotation and back, and tells whether it is ready; clones
    /// share the server (the admin endpoint holds one).
    pub fn control(&self) -> ServerControl {
        self.control.clone()
    }

    /// Shuts down gracefully: deregisters from the registry, waits the propagation grace so
    /// watchers see it, stops accepting, sends goaway, drains in-flight calls for up to the
    /// drain grace, then closes every connection.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let deregistered = self.control.drain().await;
        self.stop.cancel();
        self.connections.close();
        if tokio::time::timeout(self.drain_grace, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.drain_grace, "calls still in flight after the drain grace; aborting them");
            self.force.cancel();
            self.connections.wait().await;
        }
        tracing::info!(addr = %self.local_addr, "server stopped");
        deregistered
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// The handlers are installed when this is called; to catch a signal that arrives while
    /// the server is still starting, call [`shutdown_signal`] before starting it and pass
    /// its future to [`run_until`](ServerHandle::run_until).
    pub async fn run_until_signal(self) -> Result<(), ServerError> {
        self.run_until(shutdown_signal()).await
    }

    /// Runs until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        signal.await;
        tracing::info!("shutdown requested");
        self.shutdown().await
    }
}

/// Installs SIGINT (Ctrl-C) and, on Unix, SIGTERM handlers now, and returns a future that
/// resolves when either arrives. From this call on, those signals no longer kill the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (term, int) => {
                    if let Err(e) = term.and(int) {
                        tracing::warn!(error = %e, "cannot install signal handlers; falling back to Ctrl-C only");
                    }
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
