//! Publishing the served services in a registry, and withdrawing them on shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::ServerError;
use crate::registry::{Registry, RegistryError, ServiceInstance};

/// What this server published, and where.
pub(crate) struct Registration {
    registry: Option<Arc<dyn Registry>>,
    instances: Vec<ServiceInstance>,
    address: String,
    propagation_grace: Duration,
}

impl Registration {
    pub(crate) fn new(
        registry: Option<Arc<dyn Registry>>,
        instances: Vec<ServiceInstance>,
        propagation_grace: Duration,
    ) -> Registration {
        let address = instances
            .first()
            .map(ServiceInstance::address)
            .unwrap_or_default();
        Registration {
            registry,
            instances,
            address,
            propagation_grace,
        }
    }

    /// The published `host:port` (every instance has the same).
    pub(crate) fn address(&self) -> String {
        self.address.clone()
    }

    /// The instances published.
    pub(crate) fn instances(&self) -> &[ServiceInstance] {
        &self.instances
    }

    /// The registry backend's name, if any.
    pub(crate) fn backend(&self) -> Option<&'static str> {
        self.registry.as_ref().map(|r| r.backend())
    }

    /// Registers every instance, all at once (a backend batches them), and all or nothing:
    /// when one fails, every other is withdrawn, and so is the failed one when its outcome is
    /// unknown (the registry did not answer); a node held by someone else is left alone.
    pub(crate) async fn publish(&self) -> Result<(), ServerError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let results = futures::future::join_all(
            self.instances
                .iter()
                .map(|instance| registry.register(instance)),
        )
        .await;
        let mut first_error = None;
        let mut to_withdraw = Vec::new();
        for (instance, result) in self.instances.iter().zip(results) {
            match result {
                Ok(()) => {
                    tracing::info!(key = %instance.key(), addr = %instance.address(), registry = registry.backend(), "registered");
                    to_withdraw.push(instance);
                }
                Err(error) => {
                    if matches!(error, RegistryError::Unavailable { .. }) {
                        to_withdraw.push(instance);
                    }
                    first_error.get_or_insert(error);
                }
            }
        }
        let Some(error) = first_error else {
            return Ok(());
        };
        tracing::warn!(%error, withdrawn = to_withdraw.len(), "registration failed; withdrawing what was registered");
        for instance in to_withdraw {
            if let Err(e) = registry.deregister(instance).await {
                tracing::warn!(key = %instance.key(), error = %e, "withdrawing after a failed start failed");
            }
        }
        Err(error.into())
    }

    /// Deregisters every instance, then waits the propagation grace so consumers' watches
    /// drop this provider before it stops taking calls.
    pub(crate) async fn withdraw(&self) -> Result<(), ServerError> {
        if self.registry.is_none() {
            return Ok(());
        }
        let result = self.deregister().await;
        tokio::time::sleep(self.propagation_grace).await;
        result
    }

    /// Deregisters every instance, trying each even when one fails.
    pub(crate) async fn deregister(&self) -> Result<(), ServerError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let mut result = Ok(());
        for instance in &self.instances {
            if let Err(e) = registry.deregister(instance).await {
                tracing::warn!(key = %instance.key(), error = %e, "deregister failed");
                result = Err(e.into());
            }
        }
        result
    }
}
