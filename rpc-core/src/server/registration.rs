//! Publishing the served services in a registry, and withdrawing them on shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::ServerError;
use crate::registry::{Registry, ServiceInstance};

/// What this server published, and where.
pub(crate) struct Registration {
    registry: Option<Arc<dyn Registry>>,
    instances: Vec<ServiceInstance>,
    propagation_grace: Duration,
}

impl Registration {
    pub(crate) fn new(
        registry: Option<Arc<dyn Registry>>,
        instances: Vec<ServiceInstance>,
        propagation_grace: Duration,
    ) -> Registration {
        Registration {
            registry,
            instances,
            propagation_grace,
        }
    }

    /// Registers every instance.
    pub(crate) async fn publish(&self) -> Result<(), ServerError> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        for instance in &self.instances {
            registry.register(instance).await?;
            tracing::info!(key = %instance.key(), addr = %instance.address(), registry = registry.backend(), "registered");
        }
        Ok(())
    }

    /// Deregisters every instance, then waits the propagation grace so consumers' watches
    /// drop this provider before it stops taking calls.
    pub(crate) async fn withdraw(&self) -> Result<(), ServerError> {
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
        tokio::time::sleep(self.propagation_grace).await;
        result
    }
}
