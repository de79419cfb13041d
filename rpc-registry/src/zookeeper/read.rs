//! Reading one service key's instances: list the children of its parent, get each one's
//! data, keep those that hold valid layout JSON.

use rpc_core::registry::{ServiceInstance, ServiceKey};
use zookeeper_client as zk;

use super::error::{within, REGISTRY};
use super::shared::Shared;
use crate::layout::parse_nodes;

/// The current instances of `key`, sorted by address. A missing parent means none; a child
/// that is not valid layout JSON for this key is skipped, with one warning per version.
pub(crate) async fn list_instances(
    shared: &Shared,
    client: &zk::Client,
    key: &ServiceKey,
) -> Result<Vec<ServiceInstance>, zk::Error> {
    let limit = shared.options.request_timeout;
    let parent = shared.layout.key_path(key);
    let children = match within(limit, client.list_children(&parent)).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let reads = children.iter().map(|child| {
        let path = format!("{parent}/{child}");
        async move {
            let result = within(limit, client.get_data(&path)).await;
            (path, result)
        }
    });
    let mut nodes = Vec::with_capacity(children.len());
    for (path, result) in futures::future::join_all(reads).await {
        match result {
            Ok((data, stat)) => nodes.push((path, data, stat.mzxid)),
            // Deleted between the listing and the read.
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e),
        }
    }
    let nodes = nodes
        .iter()
        .map(|(path, data, zxid)| (path.as_str(), data.as_slice(), *zxid));
    Ok(parse_nodes(
        REGISTRY,
        shared.layout.root(),
        nodes,
        &shared.warn_once,
    ))
}
