//! Turning registry instances into socket addresses, once per snapshot.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::registry::ServiceInstance;

/// How long a host name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The usable `(instance index, address, weight)` of each instance, first address wins on
/// duplicates. An instance with a bad host or port is skipped with one warning per address
/// (`warned` remembers which were reported). Host names are resolved; IP literals are not.
pub(super) async fn resolve(
    key: &str,
    instances: &[ServiceInstance],
    warned: &mut HashSet<String>,
) -> Vec<(usize, SocketAddr, u32)> {
    let mut seen = HashSet::with_capacity(instances.len());
    let mut out = Vec::with_capacity(instances.len());
    for (index, instance) in instances.iter().enumerate() {
        match address_of(instance).await {
            Ok(addr) => {
                if seen.insert(addr) {
                    out.push((index, addr, instance.weight));
                }
            }
            Err(reason) => {
                if warned.insert(instance.address()) {
                    tracing::warn!(
                        service = key,
                        address = %instance.address(),
                        reason,
                        "skipping an instance whose address cannot be used"
                    );
                }
            }
        }
    }
    out
}

async fn address_of(instance: &ServiceInstance) -> Result<SocketAddr, String> {
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
    let lookup = tokio::net::lookup_host((host, instance.port));
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(mut addrs)) => addrs
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
    async fn parses_ips_skips_bad_ones_once_and_dedupes() {
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
        let got = resolve("t.S:1", &list, &mut warned).await;
        let addrs: Vec<SocketAddr> = got.iter().map(|(_, a, _)| *a).collect();
        assert_eq!(addrs[0], "127.0.0.1:9001".parse().unwrap());
        assert_eq!(addrs[1], "[::1]:9003".parse().unwrap());
        assert_eq!(got[1].0, 3);
        assert_eq!(addrs[2].port(), 9004);
        assert_eq!(addrs.len(), 3);
        assert_eq!(warned.len(), 2);
    }
}
