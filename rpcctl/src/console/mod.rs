//! `rpcctl console`: a web console for the registry, served from this binary.
//!
//! - [`access`]: who may call the API (loopback by default, a token otherwise);
//! - [`api`]: the read side, services and one service's providers with live traffic;
//! - [`writes`]: disable, enable, weight, overrides, routes and route explain, each through
//!   the same function the matching rpcctl command calls;
//! - [`live`]: one registry watch shared by every open live page, as server-sent events;
//! - [`scrape`]: QPS, error rate and p99 from the providers' admin `/metrics`;
//! - [`assets`]: the page, its script and its style sheet, compiled in.

mod access;
mod api;
mod assets;
mod error;
mod live;
mod scrape;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use rpc_core::Registry;
use rpc_registry::RegistryUrl;
use tokio::sync::Semaphore;

use crate::commands::Target;
use crate::error::{CliError, CliResult};
use crate::output::Output;

pub use access::Secret;

/// The largest request body accepted (a routes document of many rules fits).
const MAX_BODY: usize = 64 * 1024;
/// The most live pages open at once; one more gets 503.
const MAX_LIVE_CLIENTS: usize = 32;

/// `rpcctl console` flags.
#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    /// The address to serve on. Off loopback a console token is required.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: String,
    /// A token every API request must carry (`Authorization: Bearer TOKEN`, or open the
    /// page once as `/?token=TOKEN`); required when --listen is not a loopback address.
    #[arg(
        long,
        env = "RPC_CONSOLE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = Secret::parse
    )]
    console_token: Option<Secret>,
}

/// The console's settings, checked before the registry is opened.
#[derive(Debug)]
pub struct Settings {
    listen: SocketAddr,
    token: Option<Secret>,
}

impl ConsoleArgs {
    /// Checks the address, and that a non-loopback one comes with a token.
    pub fn check(self) -> CliResult<Settings> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            CliError::new(format!(
                "--listen {:?} is not an IP address and port (e.g. 127.0.0.1:8080)",
                self.listen
            ))
        })?;
        if !listen.ip().is_loopback() && self.console_token.is_none() {
            return Err(CliError::new(format!(
                "--listen {listen} is not a loopback address: anyone who can reach it could \
                 disable providers, so pass --console-token TOKEN or set RPC_CONSOLE_TOKEN"
            )));
        }
        Ok(Settings {
            listen,
            token: self.console_token,
        })
    }
}

/// What every handler shares.
pub(crate) struct Console {
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) url: RegistryUrl,
    pub(crate) token: Option<Secret>,
    pub(crate) hub: live::Hub,
    pub(crate) scraper: scrape::Scraper,
    pub(crate) live_clients: Arc<Semaphore>,
}

/// The handlers' state.
pub(crate) type State = Arc<Console>;

/// Serves the console until Ctrl-C.
pub async fn run(target: &Target, out: Output, settings: Settings) -> CliResult {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", settings.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot read the bound address: {e}")))?;
    let (hub, hub_task) = live::Hub::start(target.registry.clone());
    let state: State = Arc::new(Console {
        registry: target.registry.clone(),
        url: target.url.clone(),
        token: settings.token,
        hub,
        scraper: scrape::Scraper::default(),
        live_clients: Arc::new(Semaphore::new(MAX_LIVE_CLIENTS)),
    });
    let access = if state.token.is_some() {
        "every API request needs the console token (open the page once as /?token=TOKEN)"
    } else {
        "loopback only, no token"
    };
    let started = format!(
        "rpcctl console listening on http://{local}/ for {} ({access})",
        target.label()
    );
    if out.is_json() {
        out.json_line(&serde_json::json!({ "listening": format!("http://{local}/") }))?;
    } else {
        out.line(&started)?;
    }
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    hub_task.abort();
    served.map_err(|e| CliError::new(format!("the console stopped: {e}")))
}

/// Every route.
fn router(state: State) -> Router {
    let key = "/api/services/{key}";
    Router::new()
        .route("/", get(assets::page))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .route("/api/services", get(api::services))
        .route(key, get(api::service))
        .route(&format!("{key}/disable"), post(writes::disable))
        .route(&format!("{key}/enable"), post(writes::enable))
        .route(&format!("{key}/weight"), post(writes::weight))
        .route(
            &format!("{key}/overrides"),
            get(api::overrides).put(writes::put_overrides),
        )
        .route(
            &format!("{key}/routes"),
            get(api::routes).put(writes::put_routes),
        )
        .route(&format!("{key}/explain"), get(writes::explain))
        .route("/api/events", get(live::events))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::check,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
