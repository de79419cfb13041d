//! `rpcctl show <service-key>`: the instances of one service version, with address, weight,
//! metadata and age, plus the lease TTL left on etcd, and each host name's resolution as a
//! consumer's directory does it (an instance whose host does not resolve is shown as
//! unresolved, with the reason).

use std::collections::BTreeMap;
use std::time::Duration;

use rpc_core::cluster::{resolve_instance, HostResolver};
use rpc_core::registry::now_ms;
use rpc_core::{ServiceInstance, ServiceKey};
use rpc_registry::Scheme;
use serde_json::json;

use crate::commands::etcd_lease::{self, Lease};
use crate::commands::Target;
use crate::error::CliResult;
use crate::output::{self, Output, Table};
use crate::spinner;

/// Shows every instance of `key`.
pub async fn run(target: &Target, out: Output, key: &ServiceKey) -> CliResult {
    let etcd = target.url.scheme == Scheme::Etcd;
    let (instances, leases) = spinner::waiting(format!("reading {key}"), async {
        let instances = target.registry.discover(key).await?;
        // Leases are read after the instances, so every instance listed has had its node.
        let leases = if etcd {
            Some(etcd_lease::leases(&target.url, key).await)
        } else {
            None
        };
        CliResult::Ok((instances, leases))
    })
    .await?;
    let resolver = HostResolver::system();
    let resolved: Vec<Result<(), String>> = futures::future::join_all(
        instances
            .iter()
            .map(|instance| resolve_instance(&resolver, instance)),
    )
    .await
    .into_iter()
    .map(|r| r.map(drop))
    .collect();
    let leases: Option<BTreeMap<String, Lease>> = match leases {
        Some(Ok(map)) => Some(map),
        Some(Err(e)) => {
            eprintln!("rpcctl: warning: cannot read lease TTLs: {e}");
            Some(BTreeMap::new())
        }
        None => None,
    };
    let now = now_ms();
    let lease_of = |instance: &ServiceInstance| -> Option<Option<Lease>> {
        leases
            .as_ref()
            .map(|map| map.get(&instance.address()).copied())
    };
    if out.is_json() {
        let list: Vec<_> = instances
            .iter()
            .zip(&resolved)
            .map(|(instance, resolution)| {
                let mut entry = instance_json(instance, now);
                entry["resolved"] = json!(resolution.is_ok());
                if let Err(reason) = resolution {
                    entry["unresolved_reason"] = json!(reason);
                }
                if let Some(lease) = lease_of(instance) {
                    entry["lease"] = lease.map_or(serde_json::Value::Null, Lease::to_json);
                }
                entry
            })
            .collect();
        return out.json_line(&json!({
            "key": key.to_string(),
            "service": key.name(),
            "version": key.version(),
            "registry": target.registry.backend(),
            "instances": list,
        }));
    }
    if instances.is_empty() {
        return out.line(&format!(
            "{key}: no instances in {} (`rpcctl list` shows what is registered)",
            target.label()
        ));
    }
    let plural = if instances.len() == 1 { "" } else { "s" };
    out.line(&format!(
        "{key}: {} instance{plural} in {}",
        instances.len(),
        target.label()
    ))?;
    let mut headers = vec!["ADDRESS", "RESOLVES", "WEIGHT", "AGE"];
    if etcd {
        headers.push("LEASE TTL");
    }
    headers.push("METADATA");
    let mut table = Table::new(&headers);
    for (instance, resolution) in instances.iter().zip(&resolved) {
        let age = output::age_ms(instance.registered_at_ms, now)
            .map(|ms| output::age(Duration::from_millis(ms)))
            .unwrap_or_else(|| "?".to_string());
        let resolves = match resolution {
            Ok(()) => "yes".to_string(),
            Err(reason) => format!("unresolved: {reason}"),
        };
        let mut row = vec![
            instance.address(),
            resolves,
            instance.weight.to_string(),
            age,
        ];
        if let Some(lease) = lease_of(instance) {
            row.push(lease.map_or_else(|| "?".to_string(), |l| l.describe()));
        }
        row.push(output::metadata(&instance.metadata));
        table.row(row);
    }
    out.line(&table.render())
}

/// One instance as `show --json` and the console's service page give it.
pub fn instance_json(instance: &ServiceInstance, now: u64) -> serde_json::Value {
    json!({
        "address": instance.address(),
        "host": instance.host,
        "port": instance.port,
        "weight": instance.weight,
        "metadata": instance.metadata,
        "registered_at_ms": instance.registered_at_ms,
        "age_ms": output::age_ms(instance.registered_at_ms, now),
    })
}
