//! The keeper: one task per registry that renews the TTL of this process's keys every
//! heartbeat and puts back the ones that are gone (expired, deleted by hand, `FLUSHALL`, a
//! Redis restart without persistence) or whose value was changed.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::connection::Failure;
use super::shared::Shared;

/// Renews one key: `PEXPIRE` when it holds our value, else writes our value with the TTL.
/// Returns 0 when renewed, 1 when it was missing, 2 when it held another value.
const RENEW: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if current then return 2 end
return 1
";

/// Starts the keeper; it ends when the registry is shut down or dropped.
pub(crate) fn spawn_keeper(shared: Arc<Shared>) {
    tokio::spawn(async move {
        let mut heartbeat = tokio::time::interval(shared.options.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shared.closed() => break,
                _ = heartbeat.tick() => {}
            }
            match renew_all(&shared).await {
                Ok(()) if failing => {
                    info!(registry = "redis", endpoint = %shared.connection.endpoint,
                        "renewing keys works again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    warn!(registry = "redis", endpoint = %shared.connection.endpoint, %error,
                        "cannot renew this process's keys; retrying every heartbeat");
                    failing = true;
                }
                Err(error) => debug!(registry = "redis", %error, "renewal still failing"),
            }
        }
        debug!(registry = "redis", "keeper stopped");
    });
}

/// Renews every registered key in one pipeline. The lock is held throughout, so a key
/// deregistered meanwhile is never written back.
async fn renew_all(shared: &Shared) -> Result<(), Failure> {
    let registered = shared.registered.lock().await;
    if registered.is_empty() {
        return Ok(());
    }
    let ttl = shared.ttl_ms();
    let mut pipeline = redis::pipe();
    for (key, instance) in registered.iter() {
        pipeline
            .cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(key)
            .arg(instance.to_json())
            .arg(ttl);
    }
    let outcomes: Vec<i64> = shared.connection.query(&pipeline).await?;
    for (key, outcome) in registered.keys().zip(outcomes) {
        match outcome {
            1 => info!(registry = "redis", key = %key, "key was missing; wrote it again"),
            2 => info!(registry = "redis", key = %key, "key held another value; restored it"),
            _ => {}
        }
    }
    Ok(())
}
