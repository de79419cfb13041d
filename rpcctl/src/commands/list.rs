//! `rpcctl list`: every registered service key with its instance count.

use std::sync::Arc;

use futures::future::try_join_all;
use rpc_core::{Registry, RegistryError, ServiceInstance, ServiceKey};
use serde_json::json;

use crate::commands::Target;
use crate::error::CliResult;
use crate::output::{Output, Table};
use crate::spinner;

/// One row of the listing.
struct Row {
    key: ServiceKey,
    instances: usize,
}

/// Lists services, versions and instance counts, sorted by name then version.
pub async fn run(target: &Target, out: Output) -> CliResult {
    let rows = spinner::waiting(format!("listing services in {}", target.label()), async {
        CliResult::Ok(
            services(&target.registry)
                .await?
                .into_iter()
                .map(|(key, instances)| Row {
                    key,
                    instances: instances.len(),
                })
                .collect::<Vec<_>>(),
        )
    })
    .await?;
    if out.is_json() {
        let services: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "key": row.key.to_string(),
                    "service": row.key.name(),
                    "version": row.key.version(),
                    "instances": row.instances,
                })
            })
            .collect();
        return out.json_line(&json!({ "services": services }));
    }
    if rows.is_empty() {
        return out.line(&format!("no services registered in {}", target.label()));
    }
    let mut table = Table::new(&["SERVICE", "VERSION", "INSTANCES"]);
    for row in &rows {
        table.row(vec![
            row.key.name().to_string(),
            row.key.version().to_string(),
            row.instances.to_string(),
        ]);
    }
    out.line(&table.render())
}

/// Every registered service key, sorted by name then version, with its instances. `rpcctl
/// list` and the console's services page both read here.
pub async fn services(
    registry: &Arc<dyn Registry>,
) -> Result<Vec<(ServiceKey, Vec<ServiceInstance>)>, RegistryError> {
    let mut keys = registry.services().await?;
    keys.sort();
    let instances = try_join_all(keys.iter().map(|key| registry.discover(key))).await?;
    Ok(keys.into_iter().zip(instances).collect())
}
