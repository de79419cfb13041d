//! Governance push: the time from writing a service's overrides document until a watching
//! consumer's directory has it in force (the figure issue 17 bounds at 10 ms p99).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_core::cluster::governance::GovernanceStore;
use rpc_core::cluster::{Directory, ServiceEntry};
use rpc_core::{Registry, RegistryError, ServiceInstance, ServiceKey};

use crate::registry_bench::Spread;
use crate::systems::BenchError;

/// How long one change may take to be in force before the run fails.
const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `changes` versions of one overrides document (a new weight each time) and times
/// each until the consumer's directory applies it. `None` if the backend keeps no documents.
pub async fn propagation(
    provider: Arc<dyn Registry>,
    consumer: Arc<dyn Registry>,
    changes: usize,
) -> Result<Option<Spread>, BenchError> {
    let key = ServiceKey::new("bench.Governance", "1.0.0");
    let instance = ServiceInstance::new(&key, "127.0.0.1", 1);
    provider.register(&instance).await?;
    let store = GovernanceStore::new(Arc::clone(&provider));
    let address = instance.address();
    match store
        .read(&key, rpc_core::documents::DocumentKind::Overrides)
        .await
    {
        Err(rpc_core::cluster::governance::StoreError::Registry(RegistryError::Unsupported {
            ..
        })) => {
            let _ = provider.shutdown().await;
            return Ok(None);
        }
        Err(e) => return Err(e.to_string().into()),
        Ok(_) => {}
    }
    let directory = Directory::new(consumer);
    let entry = directory.service(&key).await?;
    let mut samples = Vec::with_capacity(changes);
    for change in 0..changes {
        let weight = 1 + (change as u32 % 1_000);
        let generation = entry.generation();
        let started = Instant::now();
        store
            .edit_overrides(&key, |o| {
                o.address_mut(&address).weight = Some(weight);
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        applied(&entry, &address, weight, generation).await?;
        samples.push(started.elapsed());
    }
    let _ = provider.shutdown().await;
    Ok(Some(Spread::of(samples)))
}

async fn applied(
    entry: &ServiceEntry,
    address: &str,
    weight: u32,
    mut generation: u64,
) -> Result<(), BenchError> {
    let wait = async {
        loop {
            let governance = entry.governance();
            if governance.overrides().and_then(|o| o.weight(address)) == Some(weight) {
                return;
            }
            generation = entry.changed_since(generation).await;
        }
    };
    tokio::time::timeout(APPLY_TIMEOUT, wait)
        .await
        .map_err(|_| format!("weight {weight} not in force after {APPLY_TIMEOUT:?}").into())
}
