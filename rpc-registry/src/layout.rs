//! The registry layout contract (DESIGN.md), shared by the backends: where an instance's node
//! lives, and how a node read back from a registry turns into a [`ServiceInstance`].
//!
//! ```text
//! <root>/<service-name>:<version>/<host>:<port>  =  {"service":...,"version":...,...}
//! ```

use std::collections::HashSet;
use std::sync::Mutex;

use rpc_core::registry::{ServiceInstance, ServiceKey};

/// `<root>/`: every node of the layout lives under it.
pub(crate) fn root_prefix(root: &str) -> String {
    format!("{root}/")
}

/// `<root>/<name>:<version>/`: the nodes of one service key.
pub(crate) fn service_prefix(root: &str, key: &ServiceKey) -> String {
    format!("{root}/{key}/")
}

/// `<root>/<name>:<version>/<host>:<port>`: one instance's node.
pub(crate) fn node_path(root: &str, instance: &ServiceInstance) -> String {
    format!("{root}/{}/{}", instance.key(), instance.address())
}

/// The service key of a node path, if the path has the layout's shape:
/// `<root>/<name>:<version>/<host>:<port>`, with nothing after the address.
pub(crate) fn key_of_path(root: &str, path: &str) -> Result<ServiceKey, String> {
    let rest = path
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| format!("not under the root {root}/"))?;
    let (key, address) = rest
        .split_once('/')
        .ok_or_else(|| "expected <root>/<name>:<version>/<host>:<port>".to_string())?;
    if address.contains('/') {
        return Err("expected <root>/<name>:<version>/<host>:<port>, found more levels".into());
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("node name {address:?} is not <host>:<port>"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("node name {address:?} is not <host>:<port>"));
    }
    key.parse::<ServiceKey>().map_err(|e| e.to_string())
}

/// Parses one node: the path must have the layout's shape and the value must be layout JSON
/// for the service key the path names.
pub(crate) fn parse_node(root: &str, path: &str, value: &[u8]) -> Result<ServiceInstance, String> {
    let key = key_of_path(root, path)?;
    let instance =
        ServiceInstance::from_json(value).map_err(|e| format!("value is not layout JSON: {e}"))?;
    if instance.key() != key {
        return Err(format!(
            "value is for {} but the node is under {key}",
            instance.key()
        ));
    }
    Ok(instance)
}

/// Remembers which bad nodes were already reported, so each bad node is logged once per
/// revision rather than on every snapshot that skips it.
#[derive(Debug, Default)]
pub(crate) struct WarnOnce {
    seen: Mutex<HashSet<(String, i64)>>,
}

/// How many reported nodes are remembered before the memory is cleared.
const WARN_MEMORY: usize = 10_000;

impl WarnOnce {
    /// Logs a warning about `path` at `revision`, unless one was logged already.
    pub(crate) fn skip(&self, registry: &str, path: &str, revision: i64, why: &str) {
        let first = match self.seen.lock() {
            Ok(mut seen) => {
                if seen.len() >= WARN_MEMORY {
                    seen.clear();
                }
                seen.insert((path.to_string(), revision))
            }
            Err(_) => true,
        };
        if first {
            tracing::warn!(
                registry,
                node = path,
                revision,
                "skipping registry node: {why}"
            );
        }
    }
}

/// Parses the nodes of a listing, skipping (and reporting once) the ones that do not parse.
/// Items are `(path, value, revision)`. The result is sorted by address.
pub(crate) fn parse_nodes<'a>(
    registry: &str,
    root: &str,
    nodes: impl IntoIterator<Item = (&'a str, &'a [u8], i64)>,
    warn: &WarnOnce,
) -> Vec<ServiceInstance> {
    let mut out: Vec<ServiceInstance> = nodes
        .into_iter()
        .filter_map(
            |(path, value, revision)| match parse_node(root, path, value) {
                Ok(instance) => Some(instance),
                Err(why) => {
                    warn.skip(registry, path, revision, &why);
                    None
                }
            },
        )
        .collect();
    sort_instances(&mut out);
    out
}

/// Sorts instances the way every backend returns them: by host, then port.
pub(crate) fn sort_instances(instances: &mut [ServiceInstance]) {
    instances.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> ServiceInstance {
        ServiceInstance::new(
            &ServiceKey::new("example.Greeter", "1.0.0"),
            "127.0.0.1",
            9101,
        )
    }

    #[test]
    fn paths_follow_the_layout() {
        let inst = instance();
        assert_eq!(
            node_path("/rpc", &inst),
            "/rpc/example.Greeter:1.0.0/127.0.0.1:9101"
        );
        assert_eq!(
            service_prefix("/rpc", &inst.key()),
            "/rpc/example.Greeter:1.0.0/"
        );
        assert_eq!(root_prefix("/apps"), "/apps/");
    }

    #[test]
    fn parses_good_nodes_and_rejects_bad_ones() {
        let inst = instance();
        let json = inst.to_json();
        let path = node_path("/rpc", &inst);
        assert_eq!(parse_node("/rpc", &path, json.as_bytes()).unwrap(), inst);
        let bad = [
            ("/rpc/example.Greeter:1.0.0/127.0.0.1:9101", "not json"),
            ("/rpc/example.Greeter:1.0.0/noport", json.as_str()),
            ("/rpc/example.Greeter:1.0.0/h:1/extra", json.as_str()),
            ("/rpc/nokey/127.0.0.1:9101", json.as_str()),
            ("/other/example.Greeter:1.0.0/127.0.0.1:9101", json.as_str()),
            ("/rpc/example.Greeter:2.0.0/127.0.0.1:9101", json.as_str()),
        ];
        for (path, value) in bad {
            assert!(
                parse_node("/rpc", path, value.as_bytes()).is_err(),
                "{path}"
            );
        }
    }

    #[test]
    fn parse_nodes_skips_and_sorts() {
        let key = ServiceKey::new("s", "1");
        let a = ServiceInstance::new(&key, "b", 1);
        let b = ServiceInstance::new(&key, "a", 2);
        let (ja, jb) = (a.to_json(), b.to_json());
        let (pa, pb) = (node_path("/rpc", &a), node_path("/rpc", &b));
        let warn = WarnOnce::default();
        let nodes = vec![
            (pa.as_str(), ja.as_bytes(), 1),
            ("/rpc/s:1/x:1", b"{".as_slice(), 2),
            (pb.as_str(), jb.as_bytes(), 3),
        ];
        let parsed = parse_nodes("test", "/rpc", nodes, &warn);
        assert_eq!(parsed, vec![b, a]);
    }
}
