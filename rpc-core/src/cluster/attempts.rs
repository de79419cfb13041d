//! The attempt loop: pick, send, and on a retryable failure back off and try a different
//! instance, within the attempt count and the call's deadline. With one attempt it is the
//! plain path of fail-fast, fail-safe and fail-back.

use std::net::SocketAddr;

use bytes::Bytes;

use super::attempt::{attempt, AttemptContext};
use super::balance::{LoadBalancer, Pick};
use super::directory::ServiceEntry;
use super::endpoint::{Endpoint, Members};
use super::governance::{CallFacts, Routing};
use super::invoker::InvokerState;
use crate::call::Call;
use crate::protocol::{keys, Metadata, MetadataLimits};
use crate::{RpcError, Status};

/// What routing rules may ask about a call, owned for the length of the attempt loop: its
/// metadata (which holds the `rpc-tag` set on the call or inherited from the served call it
/// is made from), else the client's `client.tag`.
struct Facts<'a> {
    call: &'a Call,
    metadata: Option<Metadata>,
    tag: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(call: &'a Call, cluster: &'a InvokerState) -> Facts<'a> {
        // The client built and checked this block itself; an empty one decodes to nothing.
        let metadata = (!call.metadata.is_empty())
            .then(|| Metadata::decode(&call.metadata, &MetadataLimits::default()).ok())
            .flatten();
        Facts {
            call,
            metadata,
            tag: cluster.config.tag.as_deref(),
        }
    }

    fn get(&self) -> CallFacts<'_> {
        let metadata = self.metadata.as_ref();
        CallFacts {
            method: &self.call.method_name,
            tag: metadata.and_then(|m| m.get_str(keys::TAG)).or(self.tag),
            caller: metadata.and_then(|m| m.get_str(keys::CALLER)),
            metadata,
        }
    }
}

/// Runs up to `attempts` attempts of `call` over `entry`'s providers.
pub(crate) async fn run(
    cluster: &InvokerState,
    call: &Call,
    entry: &ServiceEntry,
    attempts: usize,
) -> Result<Bytes, RpcError> {
    let attempts = attempts.max(1);
    let governance = entry.governance();
    let balancer: &dyn LoadBalancer = governance.balancer().unwrap_or(&*cluster.config.balancer);
    let limit = cluster.config.attempt_limit(call.idempotent);
    // Addresses this call avoids: those known not to serve the service, then those it
    // tried. Allocated only when there is one.
    let mut avoid: Vec<SocketAddr> = Vec::new();
    let facts = Facts::of(call, cluster);
    cluster.not_serving.skipped(&call.service_key, &mut avoid);
    let mut last_error = None;
    for n in 0..attempts {
        if n > 0 {
            let delay = cluster.config.retry_backoff.delay(n as u32 - 1);
            if call.deadline.is_within(delay) {
                break;
            }
            tokio::time::sleep(delay).await;
            super::metrics::retried(call);
        }
        // Held across the attempt: the ejection cap counts over the snapshot picked from.
        let members = std::sync::Arc::clone(&entry.load());
        let mask = match governance.route(&call.service_key, &members, &facts.get()) {
            Routing::All => None,
            Routing::Only(mask) => Some(mask),
            Routing::None(decision) => {
                tracing::debug!(service = &*call.service_key, %decision, "a forcing rule left no provider");
                return Err(RpcError::NoProvider {
                    service: call.service_key.to_string(),
                });
            }
        };
        let Some(endpoint) = choose(balancer, &members, call.hash_key, &avoid, mask.as_deref())
        else {
            break;
        };
        crate::call::record_attempt(n + 1, endpoint.addr());
        let cx = AttemptContext {
            pool: &cluster.pool,
            ejector: &cluster.ejector,
            balancer,
            members: &members,
        };
        let error = match attempt(&cx, &endpoint, call, limit).await {
            Ok(body) => return Ok(body),
            Err(error) => error,
        };
        // Unknown service: that address serves something else, so skip it for this service.
        // Unknown method is failed over too, but not held against the address: it is as
        // likely the caller's typo, which must not take every provider out of rotation.
        if let Some(Status::UnknownService) = error.status() {
            if cluster.not_serving.mark(&call.service_key, endpoint.addr()) {
                tracing::warn!(
                    service = &*call.service_key,
                    method = &*call.method_name,
                    addr = %endpoint.addr(),
                    %error,
                    "a listed provider does not serve this service; skipping it for this service"
                );
            }
        }
        if n + 1 == attempts || !error.is_retryable(call.idempotent) {
            return Err(no_provider_if_gone(call, entry, error));
        }
        tracing::debug!(
            service = &*call.service_key,
            method = &*call.method_name,
            addr = %endpoint.addr(),
            attempt = n + 1,
            %error,
            "attempt failed; failing over to another provider"
        );
        if !avoid.contains(&endpoint.addr()) {
            avoid.push(endpoint.addr());
        }
        last_error = Some(error);
    }
    Err(match last_error {
        Some(error) => no_provider_if_gone(call, entry, error),
        None => RpcError::NoProvider {
            service: call.service_key.to_string(),
        },
    })
}

/// The registry lists no provider and empty protection kept the last list: if the kept
/// providers are gone too (connections refused), the service has no provider, and the caller
/// should hear that rather than one address's connect error.
fn no_provider_if_gone(call: &Call, entry: &ServiceEntry, error: RpcError) -> RpcError {
    if entry.is_empty_protected() && error.is_provider_failure() {
        tracing::debug!(service = &*call.service_key, %error, "kept providers are unreachable and the registry lists none");
        return RpcError::NoProvider {
            service: call.service_key.to_string(),
        };
    }
    error
}

/// The endpoint for the next attempt, in order of preference: one not avoided by this call
/// and not ejected; one not avoided (all of those are ejected: better to try one than to
/// fail with no provider); one avoided but not ejected; any.
pub(crate) fn choose(
    balancer: &dyn LoadBalancer,
    members: &Members,
    hash_key: Option<u64>,
    avoid: &[SocketAddr],
    routed: Option<&[bool]>,
) -> Option<Endpoint> {
    if members.is_empty() {
        return None;
    }
    let passes: &[(&[SocketAddr], bool)] = if avoid.is_empty() {
        &[(&[], true), (&[], false)]
    } else {
        &[(avoid, true), (avoid, false), (&[], true), (&[], false)]
    };
    passes.iter().find_map(|&(exclude, skip_ejected)| {
        let pick = Pick::new(members, hash_key, exclude, skip_ejected).routed(routed);
        balancer
            .pick(&pick)
            .and_then(|index| members.endpoints().get(index).cloned())
    })
}
