//! The Nacos backend: `nacos://host:port[?namespace=…&group=…&grpc_port=…]`, through the
//! official `nacos-sdk` crate (naming only).
//!
//! - Each registered instance is an **ephemeral** Nacos instance of the service
//!   `<name>:<version>` in the URL's namespace and group, fields mapped as [`mapping`] says.
//!   The SDK keeps them alive over its long gRPC connection and registers them again after a
//!   server restart (its own fixed intervals: about 10 s); a process that dies loses them
//!   when the server notices its connection is gone.
//! - Watches ([`watch`]) subscribe through the SDK (the server pushes full lists) and also
//!   list every heartbeat, which notices an unreachable server.
//! - The SDK's push-empty protection is off (the consumer's directory has its own), its
//!   environment variables cannot override the URL (`env_first(false)`), and its cache lives
//!   in the system temp dir and is not read at start.

mod mapping;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nacos_sdk::api::error::Error as NacosError;
use nacos_sdk::api::naming::{
    NamingService, NamingServiceBuilder, ServiceInstance as NacosInstance,
};
use nacos_sdk::api::props::ClientProps;
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchStream};
use tokio::sync::watch as state;
use tracing::info;

use crate::layout::{self, WarnOnce};
use crate::options::{RegistryOptions, RegistryUrl};

/// The backend's name in errors and logs.
const REGISTRY: &str = "nacos";

/// Services asked for per page of `get_service_list`.
const PAGE: i32 = 500;

/// A [`Registry`] kept in Nacos 2.x (or a server speaking its gRPC protocol, e.g. rnacos).
///
/// [`Registry::shutdown`] deregisters every instance; the SDK has no way to close its
/// connection, so a registry dropped without shutdown keeps its instances until the process
/// exits.
pub struct NacosRegistry {
    shared: Arc<Shared>,
}

/// State shared with the watch tasks.
struct Shared {
    naming: NamingService,
    endpoint: String,
    options: RegistryOptions,
    /// (service name, address) -> instance, for everything this process registered.
    registered: tokio::sync::Mutex<BTreeMap<(String, String), ServiceInstance>>,
    warn_once: WarnOnce,
    closed: state::Sender<bool>,
}

impl std::fmt::Debug for NacosRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NacosRegistry")
            .field("endpoint", &self.shared.endpoint)
            .field("namespace", &self.shared.options.namespace)
            .field("group", &self.shared.options.group)
            .finish_non_exhaustive()
    }
}

impl NacosRegistry {
    /// Connects to the server the URL names and checks it answers.
    ///
    /// Fails with [`RegistryError::Unavailable`] when it does not within the connect timeout.
    pub async fn connect(url: RegistryUrl) -> Result<NacosRegistry, RegistryError> {
        let endpoint = url.endpoints.first().cloned().unwrap_or_default();
        let options = url.options;
        let http_port: u16 = endpoint
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(8848);
        let grpc_port = options.grpc_port.unwrap_or(http_port.saturating_add(1000));
        let props = ClientProps::new()
            .server_addr(endpoint.clone())
            .remote_grpc_port(grpc_port)
            .namespace(options.namespace.clone())
            .app_name("rpc")
            .naming_push_empty_protection(false)
            .env_first(false)
            .load_cache_at_start(false)
            .cache_dir(std::env::temp_dir().join("rpc-nacos-cache"));
        let unavailable = |message: String| RegistryError::Unavailable {
            registry: REGISTRY,
            endpoints: format!("{endpoint} (grpc {grpc_port})"),
            message,
        };
        let naming = within(
            options.connect_timeout,
            NamingServiceBuilder::new(props).build(),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
        within(
            options.connect_timeout,
            naming.get_service_list(1, 1, Some(options.group.clone())),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;
        info!(registry = REGISTRY, %endpoint, grpc_port, namespace = %options.namespace,
            group = %options.group, "connected");
        let shared = Arc::new(Shared {
            naming,
            endpoint,
            options,
            registered: tokio::sync::Mutex::new(BTreeMap::new()),
            warn_once: WarnOnce::default(),
            closed: state::Sender::new(false),
        });
        Ok(NacosRegistry { shared })
    }
}

impl Shared {
    fn check_open(&self) -> Result<(), RegistryError> {
        if *self.closed.borrow() {
            Err(RegistryError::Closed { registry: REGISTRY })
        } else {
            Ok(())
        }
    }

    async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    fn error(&self, op: &'static str, key: &str, error: NacosError) -> RegistryError {
        match error {
            NacosError::ErrResponse(..) | NacosError::InvalidParam(..) => {
                RegistryError::Operation {
                    registry: REGISTRY,
                    op,
                    key: key.to_string(),
                    message: error.to_string(),
                }
            }
            other => RegistryError::Unavailable {
                registry: REGISTRY,
                endpoints: self.endpoint.clone(),
                message: format!("{op} {key}: {other}"),
            },
        }
    }

    /// The serving instances of `key` as the server has them now (not the SDK's cache).
    async fn list(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        let name = service_name(key, "discover")?;
        let group = Some(self.options.group.clone());
        let listed = within(
            self.options.request_timeout,
            self.naming
                .get_all_instances(name.clone(), group, Vec::new(), false),
        )
        .await
        .map_err(|e| self.error("discover", &name, e))?;
        Ok(self.convert(key, &listed))
    }

    /// Nacos instances to layout instances, skipping (and reporting once) the bad ones.
    fn convert(&self, key: &ServiceKey, listed: &[NacosInstance]) -> Vec<ServiceInstance> {
        let mut out: Vec<ServiceInstance> = listed
            .iter()
            .filter(|n| mapping::serving(n))
            .filter_map(|n| match mapping::from_nacos(key, n) {
                Ok(instance) => Some(instance),
                Err(why) => {
                    let node = format!("{key}/{}:{}", n.ip, n.port);
                    self.warn_once.skip(REGISTRY, &node, 0, &why);
                    None
                }
            })
            .collect();
        layout::sort_instances(&mut out);
        out
    }
}

fn service_name(key: &ServiceKey, op: &'static str) -> Result<String, RegistryError> {
    mapping::service_name(key).map_err(|message| RegistryError::Operation {
        registry: REGISTRY,
        op,
        key: key.to_string(),
        message,
    })
}

/// Runs an SDK call with a time limit; a timeout reads as the server not answering.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, NacosError>>,
) -> Result<T, NacosError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(NacosError::ClientUnhealthy(format!(
            "no answer within {limit:?}"
        ))),
    }
}

impl Drop for NacosRegistry {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
    }
}

#[async_trait::async_trait]
impl Registry for NacosRegistry {
    fn backend(&self) -> &'static str {
        REGISTRY
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        let shared = &self.shared;
        shared.check_open()?;
        let name = service_name(&instance.key(), "register")?;
        let mut registered = shared.registered.lock().await;
        let group = Some(shared.options.group.clone());
        within(
            shared.options.request_timeout,
            shared
                .naming
                .register_instance(name.clone(), group, mapping::to_nacos(instance)),
        )
        .await
        .map_err(|e| shared.error("register", &name, e))?;
        registered.insert((name, instance.address()), instance.clone());
        Ok(())
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        let shared = &self.shared;
        shared.check_open()?;
        let name = service_name(&instance.key(), "deregister")?;
        let mut registered = shared.registered.lock().await;
        registered.remove(&(name.clone(), instance.address()));
        let group = Some(shared.options.group.clone());
        within(
            shared.options.request_timeout,
            shared
                .naming
                .deregister_instance(name.clone(), group, mapping::to_nacos(instance)),
        )
        .await
        .map_err(|e| shared.error("deregister", &name, e))
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.shared.check_open()?;
        self.shared.list(key).await
    }

    async fn watch(&self, key: &ServiceKey) -> Result<WatchStream, RegistryError> {
        self.shared.check_open()?;
        watch::watch(self.shared.clone(), key.clone()).await
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        let shared = &self.shared;
        shared.check_open()?;
        let group = shared.options.group.clone();
        let mut names = Vec::new();
        for page in 1.. {
            let (batch, total) = within(
                shared.options.request_timeout,
                shared
                    .naming
                    .get_service_list(page, PAGE, Some(group.clone())),
            )
            .await
            .map_err(|e| shared.error("services", &group, e))?;
            let done = batch.is_empty() || names.len() + batch.len() >= total.max(0) as usize;
            names.extend(batch);
            if done {
                break;
            }
        }
        // Nacos keeps a service for a while after its last instance leaves: list only the
        // ones with instances.
        let mut keys = Vec::new();
        for key in names.iter().filter_map(|n| n.parse::<ServiceKey>().ok()) {
            if !shared.list(&key).await?.is_empty() {
                keys.push(key);
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        let shared = &self.shared;
        let mut registered = shared.registered.lock().await;
        shared.closed.send_replace(true);
        let mut first_error = None;
        let group = Some(shared.options.group.clone());
        for ((name, _), instance) in std::mem::take(&mut *registered) {
            let call = shared.naming.deregister_instance(
                name.clone(),
                group.clone(),
                mapping::to_nacos(&instance),
            );
            if let Err(e) = within(shared.options.request_timeout, call).await {
                first_error.get_or_insert_with(|| shared.error("shutdown", &name, e));
            }
        }
        info!(
            registry = REGISTRY,
            "shut down; deregistered this process's instances"
        );
        first_error.map_or(Ok(()), Err)
    }
}
