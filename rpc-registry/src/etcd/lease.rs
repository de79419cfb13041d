//! The lease keeper: one lease per registry client, kept alive by etcd's keep-alive stream,
//! replaced when it is lost, and the client's own nodes put back when someone removes them.
//!
//! Three background tasks share the state here:
//! - the keep-alive loop ([`super::keep_alive`]): one keep-alive message per heartbeat,
//!   whatever the number of nodes; a new lease when etcd says the old one is gone, and then
//!   every own node put again on it;
//! - the claim writer ([`super::claims`]): every put of an own node, batched into few
//!   transactions, and only onto a node no other live lease holds;
//! - the guard ([`super::guard`]): one watch on the layout root that puts back an own node
//!   deleted or overwritten by someone else, as soon as etcd reports it.
//!
//! So a heartbeat costs one request however many instances there are, and `register` never
//! waits for a self-check pass. Every put of an own node uses the lease published in
//! [`Shared::lease`], which is `None` while no live lease is known, so nothing is put with a
//! lease known to be dead.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use futures::StreamExt;
use rpc_core::registry::RegistryError;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::claims::{Claimed, Claims};
use super::endpoints::Endpoints;
use super::error::{Failure, BACKEND};
use super::own::OwnNodes;
use super::retries;
use crate::options::RegistryOptions;

/// The shortest bound on one attempt of the keeper's requests.
const MIN_ATTEMPT: Duration = Duration::from_millis(300);
/// Claims in flight while every own node is put again on a new lease.
const CLAIM_ALL_CONCURRENCY: usize = 1_024;
/// Attempts to delete a node whose put had an unknown outcome.
const RESOLVE_ATTEMPTS: usize = 20;

/// State shared by the keeper's tasks and the registry's calls.
pub(crate) struct Shared {
    pub(crate) endpoints: Arc<Endpoints>,
    pub(crate) ttl_secs: i64,
    pub(crate) heartbeat: Duration,
    pub(crate) request_timeout: Duration,
    /// The bound on each attempt of the keeper's own requests, and on the wait for a
    /// keep-alive answer: at most a heartbeat, so a member that hangs is left well within
    /// the TTL.
    pub(crate) attempt: Duration,
    /// How long `register` waits for a live lease.
    lease_wait: Duration,
    /// `<root>/`: every own node is under it.
    pub(crate) root_prefix: String,
    /// Every instance this client registered (its current data).
    pub(crate) own: Arc<OwnNodes>,
    /// Every put of an own node goes through here.
    pub(crate) claims: Claims,
    /// The live lease, or `None` before the first grant and after a lease was lost.
    pub(crate) lease: watch::Sender<Option<i64>>,
    /// The lease every own node was last put on in full, after a (re)grant.
    pub(crate) claimed_on: watch::Sender<Option<i64>>,
    /// Asks the keep-alive loop to check the lease now, not at the next heartbeat.
    pub(crate) kick: Notify,
    /// Why there is no live lease, for error messages.
    pub(crate) problem: Mutex<Option<String>>,
}

/// Keeps one lease alive for a registry client and its instances on it.
pub(crate) struct LeaseKeeper {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("lease", &*self.shared.lease.borrow())
            .finish()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the registry asked the background tasks to stop (or was dropped).
pub(crate) fn stopped(stop: &watch::Receiver<bool>) -> bool {
    stop.has_changed().is_err() || *stop.borrow()
}

/// Sleeps, unless asked to stop first; returns whether to stop.
pub(crate) async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if stopped(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => stopped(stop),
        _ = stop.changed() => true,
    }
}

/// The error for a node another live registration holds: names the path and the owner.
pub(crate) fn taken_error(path: &str, lease: i64, value: &str) -> RegistryError {
    let owner = rpc_core::registry::ServiceInstance::from_json(value.as_bytes())
        .map(|i| format!("lease {lease:x}, registered at {} ms", i.registered_at_ms))
        .unwrap_or_else(|_| format!("lease {lease:x}"));
    RegistryError::Taken {
        registry: BACKEND,
        path: path.to_string(),
        owner,
    }
}

impl LeaseKeeper {
    /// Starts the keeper's tasks; the lease is granted at once, and they stop when `stop`
    /// says so.
    pub(crate) fn start(
        endpoints: Arc<Endpoints>,
        options: &RegistryOptions,
        stop: watch::Receiver<bool>,
    ) -> LeaseKeeper {
        let own = Arc::new(OwnNodes::default());
        let shared = Arc::new(Shared {
            claims: Claims::start(endpoints.clone(), Arc::clone(&own)),
            endpoints,
            ttl_secs: (options.ttl.as_secs_f64().ceil() as i64).max(1),
            heartbeat: options.heartbeat,
            request_timeout: options.request_timeout,
            attempt: options
                .request_timeout
                .min(options.heartbeat)
                .max(MIN_ATTEMPT),
            lease_wait: options.connect_timeout + options.request_timeout,
            root_prefix: crate::layout::root_prefix(&options.root),
            own,
            lease: watch::channel(None).0,
            claimed_on: watch::channel(None).0,
            kick: Notify::new(),
            problem: Mutex::new(None),
        });
        let tasks = vec![
            tokio::spawn(super::keep_alive::run(shared.clone(), stop.clone())),
            tokio::spawn(super::guard::run(shared.clone(), stop)),
        ];
        LeaseKeeper {
            shared,
            tasks: Mutex::new(tasks),
        }
    }

    /// The live lease, if there is one.
    pub(crate) fn lease_id(&self) -> Option<i64> {
        *self.shared.lease.borrow()
    }

    /// Puts a node with the live lease and keeps it there until deregistered, unless another
    /// live lease holds it. Waits for a live lease (the first grant, or the replacement of a
    /// lost one) for at most the connect timeout plus the request timeout.
    pub(crate) async fn register(&self, path: &str, value: &str) -> Result<(), RegistryError> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.lease_wait;
        let mut lease = shared.lease.subscribe();
        let mut dead: Option<i64> = None;
        loop {
            // Copy the lease out at once: the borrow of the channel must not live across awaits.
            let waited =
                tokio::time::timeout_at(deadline, lease.wait_for(|l| l.is_some() && *l != dead))
                    .await
                    .map(|r| r.map(|id| *id));
            let id = match waited {
                Ok(Ok(Some(id))) => id,
                Ok(Ok(None)) => continue,
                Ok(Err(_)) => {
                    let failure = shared.unreachable("the lease keeper has stopped");
                    return Err(failure.into_error("register", path));
                }
                Err(_) => {
                    let problem = lock(&shared.problem).clone();
                    let failure = shared.unreachable(&format!(
                        "no live lease within {:?}: {}",
                        shared.lease_wait,
                        problem.as_deref().unwrap_or("etcd did not answer")
                    ));
                    return Err(failure.into_error("register", path));
                }
            };
            // Kept before the put, so the guard knows the node from its first event on.
            shared.own.insert(path, value);
            match shared.claims.claim(path, value, id).await {
                Ok(Claimed::Ours { revision }) => {
                    shared.own.confirmed(path, value, revision);
                    return Ok(());
                }
                // A newer register or a deregister of this path came meanwhile and decides.
                Ok(Claimed::Superseded) => return Ok(()),
                Ok(Claimed::Taken { lease, value: held }) => {
                    shared.own.remove_if(path, value);
                    return Err(taken_error(path, lease, &held));
                }
                Err(failure) if failure.lease_gone() => {
                    // The keeper finds out at its next heartbeat; make that now. The node stays
                    // kept, so the keeper puts it with the next lease in any case.
                    dead = Some(id);
                    shared.kick.notify_one();
                }
                Err(failure) => {
                    shared.own.remove_if(path, value);
                    if failure.outcome_unknown() {
                        // The put may have committed: do not leave it on the lease, forgotten.
                        tokio::spawn(resolve_unknown(
                            Arc::clone(shared),
                            path.to_string(),
                            value.to_string(),
                            id,
                        ));
                    }
                    return Err(failure.into_error("register", path));
                }
            }
        }
    }

    /// Deletes a node, if it is ours, and stops keeping it.
    pub(crate) async fn deregister(&self, path: &str) -> Result<(), Failure> {
        self.shared.own.remove(path);
        match self.lease_id() {
            Some(lease) => self.shared.delete_if_ours(path, lease, None).await,
            // No live lease: whatever we put went with the lost one.
            None => Ok(()),
        }
    }

    /// Stops the tasks (the registry has signalled them) and revokes the lease, which
    /// deletes every own node at once.
    pub(crate) async fn shutdown(&self) -> Result<(), Failure> {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for mut task in tasks {
            if tokio::time::timeout(self.shared.request_timeout, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let shared = &self.shared;
        shared.own.clear();
        let Some(id) = shared.lease.send_replace(None) else {
            return Ok(());
        };
        let revoked = shared
            .endpoints
            .call(|mut client| async move { client.lease_revoke(id).await })
            .await;
        match revoked {
            Ok(_) => {
                tracing::debug!(lease = format!("{id:x}"), "etcd lease revoked");
                Ok(())
            }
            Err(failure) if failure.lease_gone() => Ok(()),
            Err(failure) => Err(failure),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        for task in lock(&self.tasks).iter() {
            task.abort();
        }
    }
}

impl Shared {
    pub(crate) fn unreachable(&self, message: &str) -> Failure {
        Failure::Unreachable {
            endpoints: self.endpoints.label().to_string(),
            message: message.to_string(),
        }
    }

    /// Deletes `path` if it holds `lease` (and `value`, when given).
    pub(crate) async fn delete_if_ours(
        &self,
        path: &str,
        lease: i64,
        value: Option<&str>,
    ) -> Result<(), Failure> {
        let mut compare = vec![Compare::lease(path, CompareOp::Equal, lease)];
        if let Some(value) = value {
            compare.push(Compare::value(path, CompareOp::Equal, value));
        }
        let txn = Txn::new()
            .when(compare)
            .and_then([TxnOp::delete(path, None)]);
        self.endpoints
            .call(|mut client| {
                let txn = txn.clone();
                async move { client.txn(txn).await.map(drop) }
            })
            .await
    }

    /// Puts every own node on `lease` (after a new grant), batched; a node another live
    /// lease took meanwhile is given up, loudly. Returns how many were put.
    pub(crate) async fn claim_all(&self, lease: i64) -> Result<usize, Failure> {
        let nodes = self.own.all();
        let results: Vec<_> = futures::stream::iter(nodes)
            .map(|(path, value)| async move {
                let claimed = self.claims.claim(&path, &value, lease).await;
                (path, value, claimed)
            })
            .buffer_unordered(CLAIM_ALL_CONCURRENCY)
            .collect()
            .await;
        let mut put = 0;
        let mut first_failure = None;
        for (path, value, claimed) in results {
            match claimed {
                Ok(Claimed::Ours { revision }) => {
                    put += 1;
                    self.after_claim(&path, &value, lease, revision).await;
                }
                // Registered again (that claim puts the new value) or deregistered meanwhile.
                Ok(Claimed::Superseded) => {}
                Ok(Claimed::Taken { lease: owner, .. }) => {
                    self.own.remove_if(&path, &value);
                    tracing::error!(
                        node = %path,
                        owner = format!("{owner:x}"),
                        "etcd: another live provider took this node while our lease was lost; no longer publishing it"
                    );
                }
                Err(failure) => {
                    first_failure.get_or_insert(failure);
                }
            }
        }
        first_failure.map_or(Ok(put), Err)
    }

    /// After a put that made `path` ours: records it, or (when it was deregistered
    /// meanwhile) deletes it again.
    pub(crate) async fn after_claim(&self, path: &str, value: &str, lease: i64, revision: i64) {
        if self.own.holds(path, value) {
            self.own.confirmed(path, value, revision);
        } else if self.own.get(path).is_none() {
            let _ = self.delete_if_ours(path, lease, Some(value)).await;
        }
    }
}

/// Deletes a node whose put had no answer, unless it is registered again meanwhile: retried
/// with backoff until etcd answers, the lease is gone, or the attempts run out.
async fn resolve_unknown(shared: Arc<Shared>, path: String, value: String, lease: i64) {
    let mut backoff = retries(shared.heartbeat);
    for _ in 0..RESOLVE_ATTEMPTS {
        if shared.own.get(&path).is_some() {
            return;
        }
        match shared.delete_if_ours(&path, lease, Some(&value)).await {
            Ok(()) => {
                tracing::debug!(node = %path, "etcd: a put with an unknown outcome was undone");
                return;
            }
            Err(failure) if failure.lease_gone() => return,
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
    tracing::warn!(node = %path, lease = format!("{lease:x}"), "etcd: could not undo a put with an unknown outcome; it stays until the lease ends");
}
