//! The guard: one watch on the layout root that puts back an own node when someone else
//! deletes or overwrites it, as soon as etcd reports it. It replaces a per-heartbeat check of
//! every node: its cost is one watch, whatever the number of nodes, and nothing when nothing
//! changes.
//!
//! The watch resumes from the last revision it saw after a break; when etcd has compacted
//! that revision away (or at the first start with nodes already kept), it compares every own
//! node with one listing of the root instead.

use std::collections::HashMap;
use std::sync::Arc;

use etcd_client::{
    Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use tokio::sync::watch;

use super::claims::Claimed;
use super::lease::{sleep_or_stop, stopped, Shared};
use super::retries;

/// Repairs in flight at once.
const REPAIR_CONCURRENCY: usize = 256;

/// Why one watch session ended.
enum End {
    Stop,
    /// Watch again from the last revision seen.
    Resume(String),
    /// Watch again from now, after comparing every own node.
    Resync(String),
}

/// What an event asks for.
enum Repair {
    /// Put the node back if no one holds it (it was deleted).
    Claim,
    /// Put the node back over the value someone wrote at this revision.
    Restore(i64),
}

/// The guard task.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = retries(shared.heartbeat);
    // The next revision to watch from; `None`: start from now, after a resync.
    let mut from: Option<i64> = None;
    loop {
        if stopped(&stop) {
            return;
        }
        let end = session(&shared, &mut from, &mut stop).await;
        let reason = match end {
            End::Stop => return,
            End::Resume(reason) => reason,
            End::Resync(reason) => {
                from = None;
                reason
            }
        };
        tracing::debug!("etcd: own-node watch interrupted: {reason}");
        shared.endpoints.demote();
        if sleep_or_stop(backoff.next_delay(), &mut stop).await {
            return;
        }
    }
}

async fn session(shared: &Shared, from: &mut Option<i64>, stop: &mut watch::Receiver<bool>) -> End {
    let resync = from.is_none();
    let start = match *from {
        Some(revision) => revision,
        None => match current_revision(shared).await {
            Ok(revision) => revision + 1,
            Err(reason) => return End::Resume(reason),
        },
    };
    let prefix = shared.root_prefix.clone();
    let opened = shared
        .endpoints
        .call_once(shared.attempt, |mut client| {
            let prefix = prefix.clone();
            async move {
                let options = WatchOptions::new().with_prefix().with_start_revision(start);
                client.watch(prefix, Some(options)).await
            }
        })
        .await;
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(failure) => return End::Resume(format!("cannot start the watch: {failure}")),
    };
    *from = Some(start);
    if resync && shared.own.len() > 0 {
        if let Err(reason) = compare_all(shared, start - 1).await {
            *from = None;
            return End::Resume(reason);
        }
    }
    loop {
        let message = tokio::select! {
            _ = stop.changed() => {
                if stopped(stop) {
                    return End::Stop;
                }
                continue;
            }
            message = stream.next() => message,
        };
        let response = match message {
            Some(Ok(response)) => response,
            Some(Err(e)) => return End::Resume(format!("watch stream failed: {e}")),
            None => return End::Resume("watch stream closed".into()),
        };
        if response.compact_revision() > 0 {
            return End::Resync(format!(
                "etcd compacted revision {}",
                response.compact_revision()
            ));
        }
        if response.canceled() {
            return End::Resume(format!(
                "etcd canceled the watch: {}",
                response.cancel_reason()
            ));
        }
        let mut latest = *from;
        let mut repairs = Vec::new();
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            latest = latest.max(Some(kv.mod_revision() + 1));
            let deleted = event.event_type() == EventType::Delete;
            if let Some(repair) = judge(shared, kv, deleted) {
                repairs.push((path_of(kv), kv.lease(), repair));
            }
        }
        repair_all(shared, repairs).await;
        *from = latest;
    }
}

/// Whether an event about `kv` calls for putting an own node back.
fn judge(shared: &Shared, kv: &KeyValue, deleted: bool) -> Option<Repair> {
    let path = std::str::from_utf8(kv.key()).ok()?;
    let own = shared.own.get(path)?;
    // Not yet confirmed ours: the claim in flight decides, and must never be raced by a
    // restore that would overwrite a node another live provider holds.
    if own.revision == 0 {
        return None;
    }
    // Events up to our own last put are history.
    if kv.mod_revision() <= own.revision {
        return None;
    }
    let lease = (*shared.lease.borrow())?;
    if deleted {
        return Some(Repair::Claim);
    }
    if kv.lease() == lease && kv.value() == own.value.as_bytes() {
        return None;
    }
    Some(Repair::Restore(kv.mod_revision()))
}

fn path_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}

/// Repairs many nodes at once (a prefix deleted by hand, say); the claims are batched.
async fn repair_all(shared: &Shared, repairs: Vec<(String, i64, Repair)>) {
    futures::stream::iter(repairs)
        .for_each_concurrent(
            REPAIR_CONCURRENCY,
            |(path, other_lease, repair)| async move {
                repair_node(shared, path, other_lease, repair).await;
            },
        )
        .await;
}

async fn repair_node(shared: &Shared, path: String, other_lease: i64, repair: Repair) {
    let (Some(own), Some(lease)) = (shared.own.get(&path), *shared.lease.borrow()) else {
        return;
    };
    match repair {
        Repair::Claim => match shared.claims.claim(&path, &own.value, lease).await {
            Ok(Claimed::Ours { revision }) => {
                tracing::info!(node = %path, lease = format!("{lease:x}"), "etcd: own node was deleted by someone else; put it back");
                shared.after_claim(&path, &own.value, lease, revision).await;
            }
            Ok(Claimed::Superseded) => {} // Its newer claim, or its deregister, decides.
            Ok(Claimed::Taken { lease: owner, .. }) => {
                shared.own.remove_if(&path, &own.value);
                tracing::error!(node = %path, owner = format!("{owner:x}"), "etcd: another live provider took this node after it was deleted; no longer publishing it");
            }
            Err(failure) => {
                // A lost lease is the keep-alive loop's to repair, with every node.
                tracing::debug!(node = %path, "etcd: cannot put an own node back: {failure}");
                shared.kick.notify_one();
            }
        },
        Repair::Restore(seen) => {
            let txn = Txn::new()
                .when([Compare::mod_revision(path.as_str(), CompareOp::Equal, seen)])
                .and_then([TxnOp::put(
                    path.as_str(),
                    own.value.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            let restored = shared
                .endpoints
                .call(|mut client| {
                    let txn = txn.clone();
                    async move { client.txn(txn).await }
                })
                .await;
            match restored {
                Ok(response) if response.succeeded() => {
                    tracing::warn!(node = %path, other_lease = format!("{other_lease:x}"), "etcd: own node was overwritten by someone else; put it back");
                    let revision = response.header().map_or(0, |h| h.revision());
                    shared.after_claim(&path, &own.value, lease, revision).await;
                }
                Ok(_) => {} // Changed again since; the next event decides.
                Err(failure) => {
                    tracing::debug!(node = %path, "etcd: cannot restore an own node: {failure}");
                    shared.kick.notify_one();
                }
            }
        }
    }
}

async fn current_revision(shared: &Shared) -> Result<i64, String> {
    let prefix = shared.root_prefix.clone();
    shared
        .endpoints
        .call_once(shared.attempt, |mut client| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new().with_prefix().with_count_only();
                client.get(prefix, Some(options)).await
            }
        })
        .await
        .map(|r| r.header().map_or(0, |h| h.revision()))
        .map_err(|f| format!("cannot read the revision: {f}"))
}

/// Compares every own node with one listing of the root at `revision` and repairs the
/// ones that differ.
async fn compare_all(shared: &Shared, revision: i64) -> Result<(), String> {
    let prefix = shared.root_prefix.clone();
    let listing = shared
        .endpoints
        .call_once(shared.request_timeout, |mut client| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new().with_prefix().with_revision(revision);
                client.get(prefix, Some(options)).await
            }
        })
        .await
        .map_err(|f| format!("cannot list own nodes: {f}"))?;
    let held: HashMap<&[u8], &KeyValue> = listing.kvs().iter().map(|kv| (kv.key(), kv)).collect();
    let mut repairs = Vec::new();
    for (path, _) in shared.own.all() {
        match held.get(path.as_bytes()) {
            Some(kv) => {
                if let Some(repair) = judge(shared, kv, false) {
                    repairs.push((path, kv.lease(), repair));
                }
            }
            None => {
                let before = shared
                    .own
                    .get(&path)
                    .is_some_and(|own| own.revision > 0 && own.revision <= revision);
                if before {
                    repairs.push((path, 0, Repair::Claim));
                }
            }
        }
    }
    repair_all(shared, repairs).await;
    Ok(())
}
