//! The lease keeper: one lease per registry client, kept alive by etcd's keep-alive stream,
//! replaced when it is lost, and the client's own nodes put back when someone removes them.
//!
//! A background task owns the lease, granted when the first instance is registered. Every
//! heartbeat it sends one keep-alive on the stream; every answer confirms the lease and
//! starts the self-check, a transaction per own node that puts the node back unless it still
//! holds this lease and this value. The self-check runs beside the keep-alives, so a slow
//! write never delays them. When the stream breaks (or an answer is a heartbeat late), the
//! task reopens it for the same lease, starting on another endpoint; when etcd says the lease
//! is gone (TTL 0, "lease not found"), it grants a new lease and the first self-check on it
//! puts every node again. Retries go on forever with jittered backoff capped at the heartbeat
//! (and 2.5 s), and only changes of state are logged.
//!
//! Every put of an own node uses the lease published in [`Shared::lease`], which is `None`
//! while no live lease is known, so nothing is put with a lease known to be dead.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper as KeepAliveSender, PutOptions, Txn,
    TxnOp,
};
use futures::StreamExt;
use rpc_core::backoff::Retries;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::endpoints::Endpoints;
use super::error::Failure;
use super::retries;
use crate::options::RegistryOptions;

/// The shortest bound on one attempt of the keeper's requests.
const MIN_ATTEMPT: Duration = Duration::from_millis(300);

/// State shared by the keeper task and the registry's calls.
struct Shared {
    endpoints: Arc<Endpoints>,
    ttl_secs: i64,
    heartbeat: Duration,
    request_timeout: Duration,
    /// The bound on each attempt of the keeper's own requests, and on the wait for a
    /// keep-alive answer: at most a heartbeat, so a member that hangs is left well within
    /// the TTL.
    attempt: Duration,
    /// How long `register` waits for a live lease.
    lease_wait: Duration,
    /// Node path -> value of every instance this client registered (its current data).
    instances: Mutex<BTreeMap<String, String>>,
    /// Serializes writes of own nodes (register, deregister, self-check), so the self-check
    /// never resurrects a node that is being deregistered.
    writes: tokio::sync::Mutex<()>,
    /// The live lease, or `None` before the first grant and after a lease was lost.
    lease: watch::Sender<Option<i64>>,
    /// Asks the task to check the lease now, not at the next heartbeat.
    kick: Notify,
    /// Why there is no live lease, for error messages.
    problem: Mutex<Option<String>>,
}

/// Keeps one lease alive for a registry client and re-publishes its instances on it.
pub(crate) struct LeaseKeeper {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("lease", &*self.shared.lease.borrow())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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

impl LeaseKeeper {
    /// Starts the keeper task; it grants the lease at once and stops when `stop` says so.
    pub(crate) fn start(
        endpoints: Arc<Endpoints>,
        options: &RegistryOptions,
        stop: watch::Receiver<bool>,
    ) -> LeaseKeeper {
        let shared = Arc::new(Shared {
            endpoints,
            ttl_secs: (options.ttl.as_secs_f64().ceil() as i64).max(1),
            heartbeat: options.heartbeat,
            request_timeout: options.request_timeout,
            attempt: options
                .request_timeout
                .min(options.heartbeat)
                .max(MIN_ATTEMPT),
            lease_wait: options.connect_timeout + options.request_timeout,
            instances: Mutex::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
            lease: watch::channel(None).0,
            kick: Notify::new(),
            problem: Mutex::new(None),
        });
        let task = tokio::spawn(run(shared.clone(), stop));
        LeaseKeeper {
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// The live lease, if there is one.
    pub(crate) fn lease_id(&self) -> Option<i64> {
        *self.shared.lease.borrow()
    }

    /// Puts a node with the live lease and keeps it there until deregistered. Waits for a
    /// live lease (the first grant, or the replacement of a lost one) for at most the
    /// connect timeout plus the request timeout.
    pub(crate) async fn register(&self, path: &str, value: &str) -> Result<(), Failure> {
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
                Ok(Ok(id)) => id,
                Ok(Err(_)) => return Err(shared.unreachable("the lease keeper has stopped")),
                Err(_) => {
                    self.forget(path).await;
                    let problem = lock(&shared.problem).clone();
                    return Err(shared.unreachable(&format!(
                        "no live lease within {:?}: {}",
                        shared.lease_wait,
                        problem.as_deref().unwrap_or("etcd did not answer")
                    )));
                }
            };
            let Some(id) = id else { continue };
            let _writes = shared.writes.lock().await;
            lock(&shared.instances).insert(path.to_string(), value.to_string());
            match shared.put(path, value, id).await {
                Ok(()) => return Ok(()),
                Err(failure) if failure.lease_gone() => {
                    // The keeper finds out at its next heartbeat; make that now. The node stays
                    // in the map, so the keeper puts it with the next lease in any case.
                    dead = Some(id);
                    shared.kick.notify_one();
                }
                Err(failure) => {
                    lock(&shared.instances).remove(path);
                    return Err(failure);
                }
            }
        }
    }

    /// Deletes a node and stops keeping it.
    pub(crate) async fn deregister(&self, path: &str) -> Result<(), Failure> {
        let _writes = self.shared.writes.lock().await;
        lock(&self.shared.instances).remove(path);
        self.shared.delete(path).await
    }

    async fn forget(&self, path: &str) {
        let _writes = self.shared.writes.lock().await;
        lock(&self.shared.instances).remove(path);
    }

    /// Waits for the task to stop (the registry has signalled it), deletes every own node
    /// and revokes the lease. Every step is tried; the first failure is returned.
    pub(crate) async fn shutdown(&self) -> Result<(), Failure> {
        let task = lock(&self.task).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(self.shared.request_timeout, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        let shared = &self.shared;
        let _writes = shared.writes.lock().await;
        let paths: Vec<String> = std::mem::take(&mut *lock(&shared.instances))
            .into_keys()
            .collect();
        let lease = shared.lease.send_replace(None);
        let mut first_failure = None;
        for path in paths {
            if let Err(failure) = shared.delete(&path).await {
                first_failure.get_or_insert(failure);
            }
        }
        if let Some(id) = lease {
            let revoked = shared
                .endpoints
                .call(|mut client| async move { client.lease_revoke(id).await })
                .await;
            match revoked {
                Ok(_) => tracing::debug!(lease = format!("{id:x}"), "etcd lease revoked"),
                Err(failure) if failure.lease_gone() => {}
                Err(failure) => {
                    first_failure.get_or_insert(failure);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// How one keep-alive session ended.
enum End {
    /// The registry asked to stop.
    Stopped,
    /// The stream broke; the lease may still live.
    Broken(String),
    /// etcd says the lease is gone.
    Gone(String),
}

impl Shared {
    fn unreachable(&self, message: &str) -> Failure {
        Failure::Unreachable {
            endpoints: self.endpoints.label().to_string(),
            message: message.to_string(),
        }
    }

    async fn put(&self, path: &str, value: &str, lease: i64) -> Result<(), Failure> {
        self.endpoints
            .call(|mut client| {
                let (path, value) = (path.to_string(), value.to_string());
                async move {
                    let options = PutOptions::new().with_lease(lease);
                    client.put(path, value, Some(options)).await.map(drop)
                }
            })
            .await
    }

    async fn delete(&self, path: &str) -> Result<(), Failure> {
        self.endpoints
            .call(|mut client| {
                let path = path.to_string();
                async move { client.delete(path, None).await.map(drop) }
            })
            .await
    }

    async fn grant(&self) -> Result<i64, Failure> {
        let ttl = self.ttl_secs;
        self.endpoints
            .call_once(self.attempt, |mut client| async move {
                Ok(client.lease_grant(ttl, None).await?.id())
            })
            .await
    }

    async fn open_keep_alive(
        &self,
        lease: i64,
    ) -> Result<(KeepAliveSender, LeaseKeepAliveStream), Failure> {
        self.endpoints
            .call_once(self.attempt, |mut client| async move {
                client.lease_keep_alive(lease).await
            })
            .await
    }

    /// The self-check: puts back every own node that is missing, changed, or not on `lease`.
    /// Returns the paths put back.
    async fn check_all(&self, lease: i64) -> Result<Vec<String>, Failure> {
        let _writes = self.writes.lock().await;
        let nodes: Vec<(String, String)> = lock(&self.instances)
            .iter()
            .map(|(path, value)| (path.clone(), value.clone()))
            .collect();
        let mut restored = Vec::new();
        for (path, value) in nodes {
            let txn = Txn::new()
                .when([
                    Compare::lease(path.as_str(), CompareOp::Equal, lease),
                    Compare::value(path.as_str(), CompareOp::Equal, value.as_str()),
                ])
                .or_else([TxnOp::put(
                    path.as_str(),
                    value.as_str(),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            let response = self
                .endpoints
                .call_once(self.attempt, |mut client| {
                    let txn = txn.clone();
                    async move { client.txn(txn).await }
                })
                .await?;
            if !response.succeeded() {
                restored.push(path);
            }
        }
        Ok(restored)
    }

    /// One keep-alive session on an open stream, until it breaks, the lease is gone, or the
    /// registry stops. Each answer resets `backoff` and starts a self-check (the first one
    /// starts at once, re-putting every node after a new lease). The self-check runs beside
    /// the keep-alives: it may wait for a `register` that holds the write lock, but the
    /// keep-alives never wait for it.
    async fn keep_alive(
        &self,
        lease: i64,
        mut sender: KeepAliveSender,
        mut stream: LeaseKeepAliveStream,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Retries,
    ) -> End {
        let mut ticker = tokio::time::interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut waiting_since: Option<Instant> = None;
        let mut check: Option<Check<'_>> = Some(Box::pin(self.check_all(lease)));
        let mut first_check = true;
        loop {
            let send_now = tokio::select! {
                _ = stop.changed() => {
                    if stopped(stop) {
                        return End::Stopped;
                    }
                    false
                }
                _ = ticker.tick() => true,
                _ = self.kick.notified() => true,
                checked = run_check(&mut check) => {
                    check = None;
                    match checked {
                        Ok(restored) => report_restored(lease, &restored, first_check),
                        Err(failure) if failure.lease_gone() => {
                            return End::Gone(failure.to_string());
                        }
                        Err(failure) => return End::Broken(failure.to_string()),
                    }
                    first_check = false;
                    false
                }
                message = stream.next() => match message {
                    Some(Ok(answer)) if answer.ttl() > 0 => {
                        waiting_since = None;
                        backoff.reset();
                        if check.is_none() {
                            check = Some(Box::pin(self.check_all(lease)));
                        }
                        false
                    }
                    Some(Ok(_)) => {
                        return End::Gone("etcd answered the keep-alive with TTL 0".into());
                    }
                    Some(Err(e)) => return End::Broken(format!("keep-alive stream failed: {e}")),
                    None => return End::Broken("keep-alive stream closed".into()),
                },
            };
            if send_now {
                if let Some(since) = waiting_since {
                    if since.elapsed() > self.attempt {
                        return End::Broken(format!(
                            "no keep-alive answer within {:?}",
                            self.attempt
                        ));
                    }
                }
                if let Err(e) = sender.keep_alive().await {
                    return End::Broken(format!("keep-alive stream failed: {e}"));
                }
                waiting_since.get_or_insert_with(Instant::now);
            }
        }
    }
}

/// A self-check in progress: the paths it put back.
type Check<'a> = Pin<Box<dyn Future<Output = Result<Vec<String>, Failure>> + Send + 'a>>;

/// Waits for the self-check in progress; never finishes when there is none.
async fn run_check(check: &mut Option<Check<'_>>) -> Result<Vec<String>, Failure> {
    match check {
        Some(check) => check.await,
        None => std::future::pending().await,
    }
}

/// Logs what a self-check put back: after a (re)opened session, a summary (a new lease means
/// every node is put again); later, each node someone else deleted or changed.
fn report_restored(lease: i64, restored: &[String], first: bool) {
    let lease = format!("{lease:x}");
    if first {
        if !restored.is_empty() {
            tracing::info!(
                lease,
                count = restored.len(),
                "etcd: instances put (again) on the lease"
            );
        }
        return;
    }
    for path in restored {
        tracing::info!(
            node = %path,
            lease,
            "etcd: own node was deleted or changed by someone else; put it back"
        );
    }
}

/// The keeper's state, as far as logs are concerned: each change is logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Live,
    Unreachable,
    /// The lease is gone and a new one is being granted.
    Lost,
    /// The lease is gone and etcd cannot be reached to grant a new one.
    LostUnreachable,
}

struct HealthLog<'a> {
    shared: &'a Shared,
    state: Health,
}

impl HealthLog<'_> {
    fn count(&self) -> usize {
        lock(&self.shared.instances).len()
    }

    fn live(&mut self, lease: i64) {
        let lease = format!("{lease:x}");
        match self.state {
            Health::Starting => tracing::info!(
                endpoints = self.shared.endpoints.label(),
                lease,
                ttl_s = self.shared.ttl_secs,
                "etcd lease granted"
            ),
            Health::Lost | Health::LostUnreachable => tracing::info!(
                endpoints = self.shared.endpoints.label(),
                lease,
                instances = self.count(),
                "etcd: new lease granted; registering every instance again"
            ),
            Health::Unreachable => tracing::info!(
                endpoints = self.shared.endpoints.label(),
                lease,
                "etcd reachable again; lease kept alive"
            ),
            Health::Live => {}
        }
        self.state = Health::Live;
        *lock(&self.shared.problem) = None;
    }

    fn unreachable(&mut self, reason: &str) {
        match self.state {
            Health::Unreachable | Health::LostUnreachable => {
                tracing::debug!("etcd still unreachable: {reason}");
            }
            _ => tracing::warn!(
                endpoints = self.shared.endpoints.label(),
                instances = self.count(),
                "etcd unreachable, retrying: {reason}"
            ),
        }
        self.state = match self.state {
            Health::Lost | Health::LostUnreachable => Health::LostUnreachable,
            _ => Health::Unreachable,
        };
        *lock(&self.shared.problem) = Some(reason.to_string());
    }

    fn lost(&mut self, lease: i64, reason: &str) {
        self.shared.lease.send_replace(None);
        if !matches!(self.state, Health::Lost | Health::LostUnreachable) {
            tracing::warn!(
                endpoints = self.shared.endpoints.label(),
                lease = format!("{lease:x}"),
                instances = self.count(),
                "etcd lease lost ({reason}); granting a new one and registering again"
            );
        }
        self.state = Health::Lost;
        *lock(&self.shared.problem) = Some(format!("lease lost: {reason}"));
    }
}

/// The keeper task.
async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut health = HealthLog {
        shared: &shared,
        state: Health::Starting,
    };
    let mut backoff = retries(shared.heartbeat);
    let mut lease: Option<i64> = None;
    loop {
        if stopped(&stop) {
            return;
        }
        let id = match lease {
            Some(id) => id,
            None => match shared.grant().await {
                Ok(id) => {
                    lease = Some(id);
                    shared.lease.send_replace(Some(id));
                    id
                }
                Err(failure) => {
                    health.unreachable(&format!("cannot grant a lease: {failure}"));
                    if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let (sender, stream) = match shared.open_keep_alive(id).await {
            Ok(pair) => pair,
            Err(failure) if failure.lease_gone() => {
                lease = None;
                health.lost(id, &failure.to_string());
                continue;
            }
            Err(failure) => {
                health.unreachable(&failure.to_string());
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        health.live(id);
        match shared
            .keep_alive(id, sender, stream, &mut stop, &mut backoff)
            .await
        {
            End::Stopped => return,
            End::Gone(reason) => {
                lease = None;
                health.lost(id, &reason);
            }
            End::Broken(reason) => {
                shared.endpoints.demote();
                health.unreachable(&reason);
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return;
                }
            }
        }
    }
}
