//! The lease TTL left on each instance's node, read straight from etcd.
//!
//! The `Registry` trait knows nothing of leases (ZooKeeper has none), so `show` asks etcd
//! itself: it reads the nodes under `<root>/<service-key>/` for their lease ids, then asks
//! `LeaseTimeToLive` for each lease.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::{Client, ConnectOptions, GetOptions};
use rpc_core::ServiceKey;
use rpc_registry::RegistryUrl;

/// What etcd says about the lease a node is put with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The node has no lease: someone put it by hand, and it stays until deleted.
    None,
    /// The lease has expired or was revoked; the node goes away with it.
    Expired {
        /// The lease id.
        id: i64,
    },
    /// A live lease.
    Live {
        /// The lease id.
        id: i64,
        /// Seconds left before it expires unless kept alive.
        ttl_secs: i64,
        /// The TTL it was granted with, in seconds.
        granted_ttl_secs: i64,
    },
}

impl Lease {
    /// `28s/30s`, `none` or `expired`, for tables.
    pub fn describe(&self) -> String {
        match self {
            Lease::None => "none".to_string(),
            Lease::Expired { .. } => "expired".to_string(),
            Lease::Live {
                ttl_secs,
                granted_ttl_secs,
                ..
            } => format!("{ttl_secs}s/{granted_ttl_secs}s"),
        }
    }

    /// The JSON form: `null` for no lease, else the id (hex, as etcdctl prints it) and TTLs.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Lease::None => serde_json::Value::Null,
            Lease::Expired { id } => serde_json::json!({
                "id": format!("{id:x}"),
                "ttl_secs": -1,
                "expired": true,
            }),
            Lease::Live {
                id,
                ttl_secs,
                granted_ttl_secs,
            } => serde_json::json!({
                "id": format!("{id:x}"),
                "ttl_secs": ttl_secs,
                "granted_ttl_secs": granted_ttl_secs,
                "expired": false,
            }),
        }
    }
}

/// The lease of every node of `key`, by node name (`host:port`).
pub async fn leases(
    url: &RegistryUrl,
    key: &ServiceKey,
) -> Result<BTreeMap<String, Lease>, String> {
    let budget = url.options.connect_timeout + url.options.request_timeout * 2;
    tokio::time::timeout(budget, read(url, key))
        .await
        .unwrap_or_else(|_| Err(format!("etcd did not answer within {budget:?}")))
}

async fn read(url: &RegistryUrl, key: &ServiceKey) -> Result<BTreeMap<String, Lease>, String> {
    let endpoints: Vec<String> = url
        .endpoints
        .iter()
        .map(|e| format!("http://{e}"))
        .collect();
    let options = ConnectOptions::new()
        .with_connect_timeout(url.options.connect_timeout)
        .with_timeout(url.options.request_timeout);
    let mut client = Client::connect(&endpoints, Some(options))
        .await
        .map_err(|e| format!("cannot connect to etcd at {}: {e}", endpoints.join(",")))?;
    let prefix = format!("{}/{key}/", url.options.root);
    let listing = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| format!("etcd get {prefix}: {e}"))?;
    let nodes: Vec<(String, i64)> = listing
        .kvs()
        .iter()
        .filter_map(|kv| {
            let path = kv.key_str().ok()?;
            let address = path.strip_prefix(&prefix)?;
            Some((address.to_string(), kv.lease()))
        })
        .collect();
    let ids: BTreeSet<i64> = nodes
        .iter()
        .map(|&(_, id)| id)
        .filter(|&id| id != 0)
        .collect();
    let mut found = BTreeMap::new();
    for id in ids {
        let answer = client
            .lease_time_to_live(id, None)
            .await
            .map_err(|e| format!("etcd lease time-to-live {id:x}: {e}"))?;
        let lease = if answer.ttl() < 0 {
            Lease::Expired { id }
        } else {
            Lease::Live {
                id,
                ttl_secs: answer.ttl(),
                granted_ttl_secs: answer.granted_ttl(),
            }
        };
        found.insert(id, lease);
    }
    Ok(nodes
        .into_iter()
        .map(|(address, id)| {
            let lease = match id {
                0 => Lease::None,
                id => found.get(&id).copied().unwrap_or(Lease::Expired { id }),
            };
            (address, lease)
        })
        .collect())
}
