//! The admin endpoint's listener: HTTP/1.1 on its own port, a bounded number of connections,
//! a header read timeout, and small buffers, so a bad client cannot hurt the process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::routes::route;
use super::state::AdminState;
use crate::server::ServerControl;
use crate::Client;

/// Admin connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head buffered.
const MAX_HEAD: usize = 16 * 1024;

/// A running admin endpoint; stops when [`shutdown`](AdminEndpoint::shutdown) is called or
/// it is dropped.
pub struct AdminEndpoint {
    local_addr: SocketAddr,
    state: Arc<AdminState>,
    stop: CancellationToken,
}

impl AdminEndpoint {
    /// Binds `addr` (`HOST:PORT`) and serves the admin routes, rendering `prometheus` at
    /// `/metrics` (`None`: 404 there). Ready answers 503 until a server or client is attached.
    pub async fn start(
        addr: &str,
        prometheus: Option<PrometheusHandle>,
    ) -> std::io::Result<AdminEndpoint> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let state = Arc::new(AdminState::new(prometheus));
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Arc::clone(&state), stop.clone()));
        tracing::info!(addr = %local_addr, "admin endpoint listening");
        Ok(AdminEndpoint {
            local_addr,
            state,
            stop,
        })
    }

    /// Installs the Prometheus recorder ([`install_prometheus`](super::install_prometheus))
    /// as the global one and starts the endpoint rendering it; what `--admin` does in the
    /// examples. If another recorder is installed already, `/metrics` answers 404 (logged).
    pub async fn start_with_prometheus(addr: &str) -> std::io::Result<AdminEndpoint> {
        let prometheus = match super::install_prometheus() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics is off");
                None
            }
        };
        AdminEndpoint::start(addr, prometheus).await
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Reports on `server` from now on: readiness, `/services`, `/offline`, `/online`.
    pub fn attach_server(&self, server: ServerControl) {
        self.state.attach_server(server);
    }

    /// Lists `client`'s directory at `/services` and in the directory gauges.
    pub fn attach_client(&self, client: Client) {
        self.state.attach_client(client);
    }

    /// Stops accepting; connections being served finish their request.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl Drop for AdminEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(Arc::clone(&state), request));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "admin connection ended");
                    }
                }
                _ = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            drop(slot);
        });
    }
}
