//! Fail-back: failed calls wait in a bounded queue and are retried in the background.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::call::{Call, Deadline};
use crate::cluster::metrics;
use crate::RpcError;

/// What sends a queued call again: the cluster's invoker, with fail-over. A trait, so the
/// policy does not depend on the invoker that owns it.
pub(crate) trait Redeliver: Send + Sync + 'static {
    /// Runs `call` once more, with fail-over.
    fn redeliver<'a>(&'a self, call: &'a Call) -> BoxFuture<'a, Result<Bytes, RpcError>>;
}

/// Fail-back queue settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FailbackConfig {
    /// Calls the queue holds; more are dropped with a warning. Default: 1024.
    pub capacity: usize,
    /// Time between background retries of a queued call. Default: 1 s.
    pub retry_interval: Duration,
    /// A call still undelivered this long after its failure is dropped with a warning.
    /// Default: 5 min.
    pub max_age: Duration,
    /// The deadline of each background retry, fail-over included. Default: 5 s.
    pub attempt_timeout: Duration,
}

impl Default for FailbackConfig {
    fn default() -> Self {
        FailbackConfig {
            capacity: 1024,
            retry_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

struct Queued {
    call: Call,
    failed_at: Instant,
    retries: u32,
}

/// The queue; its worker starts with the first queued call.
pub(crate) struct FailbackQueue {
    shared: Arc<Shared>,
    started: AtomicBool,
}

struct Shared {
    config: FailbackConfig,
    queue: Mutex<VecDeque<Queued>>,
    wake: Notify,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a call if there is room; says whether it was queued.
    fn push(&self, item: Queued) -> bool {
        let mut queue = self.lock();
        if queue.len() >= self.config.capacity {
            return false;
        }
        queue.push_back(item);
        true
    }
}

impl FailbackQueue {
    pub(crate) fn new(config: FailbackConfig) -> FailbackQueue {
        FailbackQueue {
            shared: Arc::new(Shared {
                config,
                queue: Mutex::new(VecDeque::new()),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            }),
            started: AtomicBool::new(false),
        }
    }

    /// Queues `call`, which failed with `error`, if retrying it is safe. Must run inside a
    /// Tokio runtime (the worker is spawned on first use).
    pub(crate) fn push(&self, cluster: Weak<dyn Redeliver>, call: &Call, error: &RpcError) {
        if !may_resend(error, call) {
            metrics::failback(call, "dropped");
            tracing::warn!(
                service = &*call.service_key,
                method = &*call.method_name,
                %error,
                "fail-back: not queued, as the call may have run and resending it is not safe"
            );
            return;
        }
        let queued = self.shared.push(Queued {
            call: call.clone(),
            failed_at: Instant::now(),
            retries: 0,
        });
        if !queued {
            metrics::failback(call, "dropped");
            tracing::warn!(
                service = &*call.service_key,
                method = &*call.method_name,
                capacity = self.shared.config.capacity,
                "fail-back queue is full; dropping the call"
            );
            return;
        }
        metrics::failback(call, "queued");
        tracing::debug!(service = &*call.service_key, method = &*call.method_name, %error, "fail-back: call queued for retry");
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(worker(Arc::clone(&self.shared), cluster));
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for FailbackQueue {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Whether resending the call cannot run it twice where running it twice would hurt.
fn may_resend(error: &RpcError, call: &Call) -> bool {
    matches!(error, RpcError::NoProvider { .. } | RpcError::Registry(_))
        || error.is_retryable(call.idempotent)
}

/// Retries every queued call each interval until the cluster is dropped.
async fn worker(shared: Arc<Shared>, cluster: Weak<dyn Redeliver>) {
    loop {
        if shared.lock().is_empty() {
            shared.wake.notified().await;
        }
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        tokio::time::sleep(shared.config.retry_interval).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let batch: Vec<Queued> = shared.lock().drain(..).collect();
        let retries = batch
            .into_iter()
            .map(|item| retry(&*cluster, &shared.config, item));
        for item in futures::future::join_all(retries)
            .await
            .into_iter()
            .flatten()
        {
            if !shared.push(item) {
                tracing::warn!(
                    "fail-back queue is full; dropping a call that is still undelivered"
                );
            }
        }
    }
}

/// One background retry; gives the call back if it should be tried again.
async fn retry(
    cluster: &dyn Redeliver,
    config: &FailbackConfig,
    mut item: Queued,
) -> Option<Queued> {
    item.retries += 1;
    let mut call = item.call.clone();
    call.deadline = Deadline::after(Some(config.attempt_timeout));
    call.budget = config.attempt_timeout;
    let result = call.within_deadline(cluster.redeliver(&call)).await;
    let error = match result {
        Ok(_) => {
            metrics::failback(&call, "delivered");
            tracing::info!(
                service = &*call.service_key,
                method = &*call.method_name,
                retries = item.retries,
                "fail-back: call delivered"
            );
            return None;
        }
        Err(error) => error,
    };
    if !may_resend(&error, &call) {
        metrics::failback(&call, "given_up");
        tracing::warn!(service = &*call.service_key, method = &*call.method_name, %error, "fail-back: giving up, as resending is not safe");
        return None;
    }
    if item.failed_at.elapsed() >= config.max_age {
        metrics::failback(&call, "given_up");
        tracing::warn!(
            service = &*call.service_key,
            method = &*call.method_name,
            retries = item.retries,
            %error,
            "fail-back: giving up, the call is too old"
        );
        return None;
    }
    tracing::debug!(service = &*call.service_key, method = &*call.method_name, %error, "fail-back: retry failed; will try again");
    Some(item)
}
