//! The keep-alive loop of the lease keeper: grant a lease, keep it alive on etcd's
//! keep-alive stream (one message per heartbeat, whatever the number of nodes), reopen the
//! stream when it breaks, grant a new lease when etcd says the old one is gone, and then put
//! every own node again on the new lease (batched, beside the keep-alives).
//!
//! Retries go on forever with jittered backoff capped at the heartbeat (and 2.5 s), and only
//! changes of state are logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper as KeepAliveSender};
use futures::StreamExt;
use rpc_core::backoff::Retries;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::error::Failure;
use super::lease::{lock, sleep_or_stop, stopped, Shared};
use super::retries;

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

    /// One keep-alive session on an open stream, until it breaks, the lease is gone, or the
    /// registry stops. Each answer resets `backoff`; the first answer on a lease that the own
    /// nodes are not yet all put on starts putting them (batched), beside the keep-alives.
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
        let mut claiming: Option<ClaimAll<'_>> = None;
        if *self.claimed_on.borrow() != Some(lease) {
            claiming = Some(Box::pin(self.claim_all(lease)));
        }
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
                claimed = run_claims(&mut claiming) => {
                    claiming = None;
                    match claimed {
                        Ok(count) => {
                            self.claimed_on.send_replace(Some(lease));
                            if count > 0 {
                                tracing::info!(lease = format!("{lease:x}"), count, "etcd: instances put (again) on the lease");
                            }
                        }
                        Err(failure) if failure.lease_gone() => return End::Gone(failure.to_string()),
                        Err(failure) => return End::Broken(failure.to_string()),
                    }
                    false
                }
                message = stream.next() => match message {
                    Some(Ok(answer)) if answer.ttl() > 0 => {
                        crate::metrics::renewed("etcd");
                        waiting_since = None;
                        backoff.reset();
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

/// Putting every own node on a lease, in progress: how many were put.
type ClaimAll<'a> = Pin<Box<dyn Future<Output = Result<usize, Failure>> + Send + 'a>>;

/// Waits for the claims in progress; never finishes when there are none.
async fn run_claims(claiming: &mut Option<ClaimAll<'_>>) -> Result<usize, Failure> {
    match claiming {
        Some(claims) => claims.await,
        None => std::future::pending().await,
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
        self.shared.own.len()
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
        crate::metrics::connected("etcd", true);
        self.state = Health::Live;
        *lock(&self.shared.problem) = None;
    }

    fn unreachable(&mut self, reason: &str) {
        crate::metrics::connected("etcd", false);
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
        crate::metrics::connected("etcd", false);
        if !matches!(self.state, Health::Lost | Health::LostUnreachable) {
            crate::metrics::lost("etcd");
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
pub(super) async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
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
