//! The attempt loop: pick, send, and on a retryable failure back off and try a different
//! instance, within the attempt count and the call's deadline. With one attempt it is the
//! plain path of fail-fast, fail-safe and fail-back.

use std::net::SocketAddr;

use bytes::Bytes;

use super::attempt::attempt;
use super::balance::{LoadBalancer, Pick};
use super::directory::ServiceEntry;
use super::endpoint::Endpoint;
use super::invoker::InvokerState;
use crate::call::Call;
use crate::RpcError;

/// Runs up to `attempts` attempts of `call` over `entry`'s providers.
pub(crate) async fn run(
    cluster: &InvokerState,
    call: &Call,
    entry: &ServiceEntry,
    attempts: usize,
) -> Result<Bytes, RpcError> {
    let attempts = attempts.max(1);
    let balancer: &dyn LoadBalancer = &*cluster.config.balancer;
    // Allocated only once an attempt fails.
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut last_error = None;
    for n in 0..attempts {
        if n > 0 {
            let delay = cluster.config.retry_backoff.delay(n as u32 - 1);
            if call.deadline.is_within(delay) {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        let Some(endpoint) = choose(balancer, entry, call.hash_key, &tried) else {
            break;
        };
        let result = attempt(
            &cluster.pool,
            &endpoint,
            call,
            cluster.config.attempt_timeout,
            &cluster.ejector,
            balancer,
        )
        .await;
        let error = match result {
            Ok(body) => return Ok(body),
            Err(error) => error,
        };
        if n + 1 == attempts || !error.is_retryable(call.idempotent) {
            return Err(error);
        }
        tracing::debug!(
            service = &*call.service_key,
            method = &*call.method_name,
            addr = %endpoint.addr(),
            attempt = n + 1,
            %error,
            "attempt failed; failing over to another provider"
        );
        if !tried.contains(&endpoint.addr()) {
            tried.push(endpoint.addr());
        }
        last_error = Some(error);
    }
    Err(last_error.unwrap_or_else(|| RpcError::NoProvider {
        service: call.service_key.to_string(),
    }))
}

/// The endpoint for the next attempt, in order of preference: one not tried by this call
/// and not ejected; one not tried (all of those are ejected: better to try one than to fail
/// with no provider); one tried but not ejected; any.
pub(crate) fn choose(
    balancer: &dyn LoadBalancer,
    entry: &ServiceEntry,
    hash_key: Option<u64>,
    tried: &[SocketAddr],
) -> Option<Endpoint> {
    let members = entry.load();
    if members.is_empty() {
        return None;
    }
    let passes: &[(&[SocketAddr], bool)] = if tried.is_empty() {
        &[(&[], true), (&[], false)]
    } else {
        &[(tried, true), (tried, false), (&[], true), (&[], false)]
    };
    passes.iter().find_map(|&(exclude, skip_ejected)| {
        let pick = Pick::new(&members, hash_key, exclude, skip_ejected);
        balancer
            .pick(&pick)
            .and_then(|index| members.endpoints().get(index).cloned())
    })
}
