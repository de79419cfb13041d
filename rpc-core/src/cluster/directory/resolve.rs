//! Turning registry instances into socket addresses: IP literals at once, host names through
//! the configured [`HostResolver`], many at a time. An instance whose host does not resolve
//! is reported as unresolved (and retried by the watch task with backoff), not forgotten.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::registry::ServiceInstance;

/// How long a host name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Lookups in flight at once for one snapshot.
const LOOKUP_CONCURRENCY: usize = 32;

type LookupFn =
    dyn Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> + Send + Sync;

/// How the directory turns a host name into addresses. Default: the system resolver
/// (`tokio::net::lookup_host`); tests and special deployments can plug in their own.
#[derive(Clone)]
pub struct HostResolver(Arc<LookupFn>);

impl HostResolver {
    /// A resolver from a function of `(host, port)`.
    pub fn new<F>(lookup: F) -> HostResolver
    where
        F: Fn(String, u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>
            + Send
            + Sync
            + 'static,
    {
        HostResolver(Arc::new(lookup))
    }

    /// The system resolver.
    pub fn system() -> HostResolver {
        HostResolver::new(|host, port| {
            async move {
                Ok(tokio::net::lookup_host((host.as_str(), port))
                    .await?
                    .collect())
            }
            .boxed()
        })
    }
}

impl Default for HostResolver {
    fn default() -> Self {
        HostResolver::system()
    }
}

impl std::fmt::Debug for HostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostResolver")
    }
}

impl PartialEq for HostResolver {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// An instance of the registry's list that has no usable address (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    /// `host:port` as registered.
    pub address: String,
    /// Why it cannot be used: the lookup error, a timeout, a bad host or port.
    pub reason: String,
}

/// What resolving one snapshot gave.
pub(super) struct Resolution {
    /// `(instance index, address, weight)` of each usable instance; first address wins on
    /// duplicates.
    pub(super) usable: Vec<(usize, SocketAddr, u32)>,
    /// The instances with no usable address.
    pub(super) unresolved: Vec<Unresolved>,
}

/// Resolves every instance of `key`'s list. An instance that fails is warned about once
/// per address (`warned` remembers which were reported).
pub(super) async fn resolve(
    key: &str,
    resolver: &HostResolver,
    instances: &[ServiceInstance],
    warned: &mut HashSet<String>,
) -> Resolution {
    let lookups: Vec<_> = instances
        .iter()
        .map(|instance| address_of(resolver, instance))
        .collect();
    let results: Vec<Result<SocketAddr, String>> = futures::stream::iter(lookups)
        .buffered(LOOKUP_CONCURRENCY)
        .collect()
        .await;
    let mut seen = HashSet::with_capacity(instances.len());
    let mut resolution = Resolution {
        usable: Vec::with_capacity(instances.len()),
        unresolved: Vec::new(),
    };
    for (index, (instance, result)) in instances.iter().zip(results).enumerate() {
        match result {
            Ok(addr) => {
                if seen.insert(addr) {
                    resolution.usable.push((index, addr, instance.weight));
                }
            }
            Err(reason) => {
                if warned.insert(instance.address()) {
                    tracing::warn!(
                        service = key,
                        address = %instance.address(),
                        reason,
                        "an instance's address cannot be used; retrying with backoff"
                    );
                }
                resolution.unresolved.push(Unresolved {
                    address: instance.address(),
                    reason,
                });
            }
        }
    }
    resolution
}

/// The address to dial for `instance`, resolving its host if it is a name.
pub async fn resolve_instance(
    resolver: &HostResolver,
    instance: &ServiceInstance,
) -> Result<SocketAddr, String> {
    address_of(resolver, instance).await
}

async fn address_of(
    resolver: &HostResolver,
    instance: &ServiceInstance,
) -> Result<SocketAddr, String> {
    if instance.port == 0 {
        return Err("port 0".to_string());
    }
    let host = instance.host.trim();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, instance.port));
    }
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("bad host {host:?}"));
    }
    let lookup = (resolver.0)(host.to_string(), instance.port);
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs
            .into_iter()
            .next()
            .ok_or_else(|| format!("host {host:?} resolves to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve host {host:?}: {e}")),
        Err(_) => Err(format!(
            "resolving host {host:?} took over {LOOKUP_TIMEOUT:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ServiceKey;

    #[tokio::test]
    async fn parses_ips_reports_bad_ones_once_and_dedupes() {
        let key = ServiceKey::new("t.S", "1");
        let mut bad_port = ServiceInstance::new(&key, "127.0.0.1", 0);
        bad_port.weight = 7;
        let list = vec![
            ServiceInstance::new(&key, "127.0.0.1", 9001),
            bad_port,
            ServiceInstance::new(&key, "not a host", 9002),
            ServiceInstance::new(&key, "::1", 9003),
            ServiceInstance::new(&key, "[::1]", 9003),
            ServiceInstance::new(&key, "localhost", 9004),
        ];
        let mut warned = HashSet::new();
        let got = resolve("t.S:1", &HostResolver::system(), &list, &mut warned).await;
        let addrs: Vec<SocketAddr> = got.usable.iter().map(|(_, a, _)| *a).collect();
        assert_eq!(addrs[0], "127.0.0.1:9001".parse().unwrap());
        assert_eq!(addrs[1], "[::1]:9003".parse().unwrap());
        assert_eq!(got.usable[1].0, 3);
        assert_eq!(addrs[2].port(), 9004);
        assert_eq!(addrs.len(), 3);
        assert_eq!(warned.len(), 2);
        assert_eq!(got.unresolved.len(), 2);
        assert_eq!(got.unresolved[1].address, "not a host:9002");
    }
}
