//! Writing this process's nodes: one ephemeral node per instance, owned by the current
//! session, under persistent parents.

use std::time::Duration;

use zookeeper_client as zk;

use super::acl::NodeAcls;
use super::error::within;
use super::paths::parent;

/// What [`ensure_node`] had to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ensured {
    /// The node was there, ours, with the right data.
    Unchanged,
    /// The node was ours; its data was updated.
    Updated,
    /// The node was missing and was created.
    Created,
    /// A node of that name belonged to an earlier session of this client (expired, but
    /// still known to the server) or to none (written by hand); it was deleted and created
    /// again.
    Replaced {
        /// The session that owned it (0 for a persistent node).
        previous_owner: i64,
    },
    /// Another client's live session owns the node; nothing was written.
    Taken {
        /// That session.
        owner: i64,
        /// What the node holds.
        data: Vec<u8>,
    },
}

/// How many times a node that keeps changing under us is retried before giving up for now.
const ATTEMPTS: usize = 8;

/// Makes `path` an ephemeral node of `client`'s session holding `data`: creates it (and its
/// persistent parents) when missing, updates its data when it differs, and deletes and
/// re-creates it when an earlier session of ours (`ours`: one that expired while the server
/// still held its nodes) or no session (a persistent node written by hand) owns it. A node
/// that another client's session owns is left alone: [`Ensured::Taken`].
///
/// The create is tried first: a new node costs one round trip.
pub(crate) async fn ensure_node(
    client: &zk::Client,
    path: &str,
    data: &[u8],
    limit: Duration,
    acls: NodeAcls,
    ours: &(dyn Fn(i64) -> bool + Sync),
) -> Result<Ensured, zk::Error> {
    let me = client.session_id().0;
    for attempt in 0..ATTEMPTS {
        if attempt == 0 {
            match create(client, path, data, limit, acls).await {
                Ok(()) => return Ok(Ensured::Created),
                Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        match within(limit, client.get_data(path)).await {
            Ok((current, stat)) if stat.ephemeral_owner == me => {
                if current == data {
                    return Ok(Ensured::Unchanged);
                }
                match within(limit, client.set_data(path, data, Some(stat.version))).await {
                    Ok(_) => return Ok(Ensured::Updated),
                    Err(zk::Error::BadVersion | zk::Error::NoNode) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok((current, stat)) if stat.ephemeral_owner != 0 && !ours(stat.ephemeral_owner) => {
                return Ok(Ensured::Taken {
                    owner: stat.ephemeral_owner,
                    data: current,
                });
            }
            Ok((_, stat)) => {
                // Delete and create in one transaction, so consumers never see it missing.
                match replace(client, path, data, stat.version, limit, acls).await {
                    Ok(()) => {
                        return Ok(Ensured::Replaced {
                            previous_owner: stat.ephemeral_owner,
                        })
                    }
                    Err(zk::Error::BadVersion | zk::Error::NoNode | zk::Error::NodeExists) => {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
        match create(client, path, data, limit, acls).await {
            Ok(()) => return Ok(Ensured::Created),
            Err(zk::Error::NodeExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(zk::Error::UnexpectedError(format!(
        "node {path} kept changing under us; will try again"
    )))
}

/// Creates `path` as our ephemeral node, making its persistent parents when missing.
async fn create(
    client: &zk::Client,
    path: &str,
    data: &[u8],
    limit: Duration,
    acls: NodeAcls,
) -> Result<(), zk::Error> {
    match within(limit, client.create(path, data, &acls.ephemeral())).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NoNode) => {
            match within(limit, client.mkdir(parent(path), &acls.persistent())).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
            within(limit, client.create(path, data, &acls.ephemeral()))
                .await
                .map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Atomically deletes `path` (at `version`) and creates it again as our ephemeral node.
async fn replace(
    client: &zk::Client,
    path: &str,
    data: &[u8],
    version: i32,
    limit: Duration,
    acls: NodeAcls,
) -> Result<(), zk::Error> {
    let mut writer = client.new_multi_writer();
    writer.add_delete(path, Some(version))?;
    writer.add_create(path, data, &acls.ephemeral())?;
    within(limit, async {
        writer.commit().await.map_err(zk::Error::from)
    })
    .await
    .map(drop)
}

/// Deletes `path` if this session owns it; a node that is gone, or another session's, is
/// left as it is.
pub(crate) async fn delete_node(
    client: &zk::Client,
    path: &str,
    limit: Duration,
) -> Result<(), zk::Error> {
    let me = client.session_id().0;
    for _ in 0..ATTEMPTS {
        let stat = match within(limit, client.check_stat(path)).await {
            Ok(Some(stat)) => stat,
            Ok(None) | Err(zk::Error::NoNode) => return Ok(()),
            Err(e) => return Err(e),
        };
        if stat.ephemeral_owner != me {
            return Ok(());
        }
        match within(limit, client.delete(path, Some(stat.version))).await {
            Ok(()) | Err(zk::Error::NoNode) => return Ok(()),
            Err(zk::Error::BadVersion) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
