//! The published address: what a provider writes in its registry node for consumers to dial.
//!
//! `server.advertise` is `HOST[:PORT]`: the host (a name or an IP; IPv6 in brackets when a
//! port follows) and, when the port consumers reach differs from the bound one (NAT,
//! containers), that port. Without it, a specific bound IP is published as is; a wildcard bind
//! (`0.0.0.0`, `::`) publishes the host's primary non-loopback address, never loopback, since
//! consumers on other hosts would dial themselves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// A parsed `HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertise {
    /// The host consumers dial.
    pub host: String,
    /// The port consumers dial; `None`: the bound port.
    pub port: Option<u16>,
}

/// Why an advertise value cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("bad advertise address {value:?}: {why}; expected HOST[:PORT], e.g. 10.0.0.7 or provider-1.internal:9101 or [2001:db8::7]:9101")]
pub struct BadAdvertise {
    /// The value given.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Advertise {
    /// Parses `HOST[:PORT]`; a bare IPv6 address (several colons) is a host with no port.
    ///
    /// ```
    /// use rpc_core::server::Advertise;
    ///
    /// let a = Advertise::parse("10.0.0.7:9200").unwrap();
    /// assert_eq!((a.host.as_str(), a.port), ("10.0.0.7", Some(9200)));
    /// assert_eq!(Advertise::parse("db8.internal").unwrap().port, None);
    /// assert_eq!(Advertise::parse("[::1]:80").unwrap().host, "::1");
    /// assert_eq!(Advertise::parse("::1").unwrap().port, None);
    /// assert!(Advertise::parse("0.0.0.0").is_err());
    /// assert!(Advertise::parse("h:0").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Advertise, BadAdvertise> {
        let bad = |why| BadAdvertise {
            value: value.to_string(),
            why,
        };
        let value = value.trim();
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
                ),
            }
        } else if value.matches(':').count() == 1 {
            let (host, port) = value.split_once(':').unwrap_or((value, ""));
            (host, Some(port))
        } else {
            (value, None)
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || "/[]@?#".contains(c)) {
            return Err(bad("no usable host"));
        }
        if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified()) {
            return Err(bad("a wildcard address cannot be dialled"));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("the port must be 1 to 65535"))?,
            ),
        };
        Ok(Advertise {
            host: host.to_string(),
            port,
        })
    }
}

/// The `(host, port)` to publish for a listener bound at `bound`.
pub(crate) fn published(advertise: Option<&Advertise>, bound: SocketAddr) -> Option<(String, u16)> {
    let port = advertise.and_then(|a| a.port).unwrap_or(bound.port());
    if let Some(advertise) = advertise {
        return Some((advertise.host.clone(), port));
    }
    if !bound.ip().is_unspecified() {
        return Some((bound.ip().to_string(), port));
    }
    let ip = primary_address(bound.is_ipv6())?;
    tracing::info!(%bound, published = %ip, "bound to all interfaces; publishing this host's primary address (set server.advertise to choose)");
    Some((ip.to_string(), port))
}

/// The address this host uses for outside traffic: the source address the kernel picks for
/// the default route. A UDP `connect` only looks the route up; it sends nothing.
fn primary_address(ipv6_first: bool) -> Option<IpAddr> {
    let v4 = || {
        route_source(
            (Ipv4Addr::UNSPECIFIED, 0),
            (Ipv4Addr::new(198, 51, 100, 1), 9),
        )
    };
    let v6 = || {
        route_source(
            (Ipv6Addr::UNSPECIFIED, 0),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9),
        )
    };
    if ipv6_first {
        v6().or_else(v4)
    } else {
        v4().or_else(v6)
    }
}

fn route_source(
    local: impl std::net::ToSocketAddrs,
    remote: impl std::net::ToSocketAddrs,
) -> Option<IpAddr> {
    let socket = UdpSocket::bind(local).ok()?;
    socket.connect(remote).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_bind_publishes_a_non_loopback_address_and_the_bound_port() {
        let bound: SocketAddr = "0.0.0.0:9101".parse().unwrap();
        if let Some((host, port)) = published(None, bound) {
            let ip: IpAddr = host.parse().unwrap();
            assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
            assert_eq!(port, 9101);
        }
        let specific: SocketAddr = "127.0.0.3:9101".parse().unwrap();
        assert_eq!(published(None, specific), Some(("127.0.0.3".into(), 9101)));
        let nat = Advertise::parse("10.1.2.3:80").unwrap();
        assert_eq!(published(Some(&nat), bound), Some(("10.1.2.3".into(), 80)));
    }
}
