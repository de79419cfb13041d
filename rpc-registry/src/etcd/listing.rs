//! The read side: one service key's nodes as a map, from a prefix get and then from watch
//! events. Bad nodes are skipped with one warning per node and revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use etcd_client::{Event, EventType, GetOptions, KeyValue};
use rpc_core::registry::ServiceInstance;

use super::endpoints::Endpoints;
use super::error::{Failure, BACKEND};
use crate::layout::{self, WarnOnce};

/// What the read side needs: where to read, the layout's root, and the warning memory.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub(crate) endpoints: Arc<Endpoints>,
    pub(crate) root: String,
    pub(crate) warned: Arc<WarnOnce>,
}

/// The valid nodes under one prefix, at a revision.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listing {
    /// The store revision the listing was read at.
    pub(crate) revision: i64,
    /// Node path -> instance.
    nodes: BTreeMap<String, ServiceInstance>,
}

impl Reader {
    /// Reads every node under `prefix`. `persist`: retry rounds over the endpoints for the
    /// request timeout (API calls), or one round only (background tasks).
    pub(crate) async fn list(&self, prefix: &str, persist: bool) -> Result<Listing, Failure> {
        let request = |mut client: etcd_client::Client| {
            let prefix = prefix.to_string();
            async move {
                client
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
            }
        };
        let response = if persist {
            self.endpoints.call(request).await?
        } else {
            let timeout = self.endpoints.request_timeout();
            self.endpoints.call_once(timeout, request).await?
        };
        let mut listing = Listing {
            revision: response.header().map_or(0, |h| h.revision()),
            nodes: BTreeMap::new(),
        };
        for kv in response.kvs() {
            self.put(&mut listing, kv);
        }
        Ok(listing)
    }

    /// Applies one batch of watch events; returns whether the instance list changed.
    pub(crate) fn apply(&self, listing: &mut Listing, events: &[Event]) -> bool {
        let mut changed = false;
        for event in events {
            let Some(kv) = event.kv() else { continue };
            listing.revision = listing.revision.max(kv.mod_revision());
            changed |= match event.event_type() {
                EventType::Put => self.put(listing, kv),
                EventType::Delete => listing.nodes.remove(&path_of(kv)).is_some(),
            };
        }
        changed
    }

    /// Adds, replaces or (when it no longer parses) removes one node; returns whether the
    /// instance list changed.
    fn put(&self, listing: &mut Listing, kv: &KeyValue) -> bool {
        let path = path_of(kv);
        match layout::parse_node(&self.root, &path, kv.value()) {
            Ok(instance) => listing.nodes.insert(path, instance.clone()) != Some(instance),
            Err(why) => {
                self.warned.skip(BACKEND, &path, kv.mod_revision(), &why);
                listing.nodes.remove(&path).is_some()
            }
        }
    }
}

impl Listing {
    /// The instances, sorted by address.
    pub(crate) fn instances(&self) -> Vec<ServiceInstance> {
        let mut out: Vec<ServiceInstance> = self.nodes.values().cloned().collect();
        layout::sort_instances(&mut out);
        out
    }
}

fn path_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}
