//! What the admin endpoint reports on: the recorder it renders, the server it can take out
//! of rotation, and the clients whose directories it lists.

use std::sync::{Arc, Mutex, MutexGuard};

use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};

use crate::server::{ServerControl, ServingState};
use crate::Client;

/// The directory gauges, set from the clients' directories at each scrape.
const DIRECTORY_PROVIDERS: &str = "rpc_client_directory_providers";
const DIRECTORY_STALE: &str = "rpc_client_directory_stale";

/// What the endpoint serves; the process attaches its server and clients as they start.
#[derive(Default)]
pub(crate) struct AdminState {
    pub prometheus: Option<PrometheusHandle>,
    attached: Mutex<Attached>,
}

#[derive(Default)]
struct Attached {
    server: Option<ServerControl>,
    clients: Vec<Client>,
}

/// What a readiness probe is told.
pub(crate) enum Readiness {
    Ready,
    NotReady(&'static str),
}

impl AdminState {
    pub(crate) fn new(prometheus: Option<PrometheusHandle>) -> AdminState {
        AdminState {
            prometheus,
            attached: Mutex::default(),
        }
    }

    fn attached(&self) -> MutexGuard<'_, Attached> {
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn attach_server(&self, server: ServerControl) {
        self.attached().server = Some(server);
    }

    pub(crate) fn attach_client(&self, client: Client) {
        self.attached().clients.push(client);
    }

    pub(crate) fn server(&self) -> Option<ServerControl> {
        self.attached().server.clone()
    }

    /// A provider is ready while serving and registered; a consumer once attached.
    pub(crate) fn readiness(&self) -> Readiness {
        let attached = self.attached();
        match &attached.server {
            Some(server) => match server.state() {
                ServingState::Serving => Readiness::Ready,
                other => Readiness::NotReady(other.as_str()),
            },
            None if attached.clients.is_empty() => Readiness::NotReady("starting"),
            None => Readiness::Ready,
        }
    }

    /// The Prometheus text, with the directory gauges brought up to date first.
    pub(crate) fn render_metrics(&self) -> Option<String> {
        let prometheus = self.prometheus.as_ref()?;
        for client in &self.attached().clients {
            let Some(directory) = client.directory() else {
                continue;
            };
            for entry in directory.entries() {
                let service = entry.key().to_string();
                ::metrics::gauge!(DIRECTORY_PROVIDERS, "rpc_service" => service.clone())
                    .set(entry.instances().len() as f64);
                ::metrics::gauge!(DIRECTORY_STALE, "rpc_service" => service)
                    .set(if entry.is_stale() { 1.0 } else { 0.0 });
            }
        }
        prometheus.run_upkeep();
        Some(prometheus.render())
    }

    /// `/services`: what this process serves (and its registrations' state) and consumes.
    pub(crate) fn services(&self) -> Value {
        let attached = self.attached();
        let serves = attached.server.as_ref().map(|server| {
            let state = server.state();
            json!({
                "state": state.as_str(),
                "registry": server.registry_backend(),
                "services": server.instances().iter().map(|instance| json!({
                    "key": instance.key().to_string(),
                    "address": instance.address(),
                    "weight": instance.weight,
                    "metadata": instance.metadata,
                    "registered": server.registry_backend().is_some() && state == ServingState::Serving,
                })).collect::<Vec<_>>(),
            })
        });
        let consumes: Vec<Value> = attached
            .clients
            .iter()
            .filter_map(|client| client.directory())
            .flat_map(|directory| directory.entries())
            .map(|entry| {
                json!({
                    "key": entry.key().to_string(),
                    "providers": entry.instances().iter().map(|i| i.address()).collect::<Vec<_>>(),
                    "stale": entry.is_stale(),
                })
            })
            .collect();
        json!({ "serves": serves, "consumes": consumes })
    }
}

/// Shared by the listener's connections.
pub(crate) type SharedState = Arc<AdminState>;
