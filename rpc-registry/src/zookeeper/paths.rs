//! Where things live in ZooKeeper: the DESIGN.md layout `<root>/<service-key>/<host>:<port>`,
//! as ZooKeeper paths (no trailing `/`).

use rpc_core::registry::{ServiceInstance, ServiceKey};

use crate::layout;

/// Builds the layout's paths under one root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: String,
}

impl Layout {
    /// A layout under `root` (`/rpc` by default; a trailing `/` is ignored).
    pub(crate) fn new(root: &str) -> Layout {
        let trimmed = root.trim_end_matches('/');
        Layout {
            root: if trimmed.is_empty() {
                "/rpc".to_string()
            } else {
                trimmed.to_string()
            },
        }
    }

    /// The root prefix, e.g. `/rpc`.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The persistent parent of one service key's instances: `/rpc/example.Greeter:1.0.0`.
    pub(crate) fn key_path(&self, key: &ServiceKey) -> String {
        let prefix = layout::service_prefix(&self.root, key);
        prefix.trim_end_matches('/').to_string()
    }

    /// The ephemeral node of one instance: `/rpc/example.Greeter:1.0.0/127.0.0.1:9101`.
    pub(crate) fn node_path(&self, instance: &ServiceInstance) -> String {
        layout::node_path(&self.root, instance)
    }
}

/// The parent of a node path (`/rpc/key` for `/rpc/key/host:port`).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Why an instance cannot be stored in the layout, if it cannot.
pub(crate) fn check_instance(instance: &ServiceInstance) -> Result<(), String> {
    let fields = [
        ("service", instance.service.as_str()),
        ("version", instance.version.as_str()),
        ("host", instance.host.as_str()),
    ];
    for (name, value) in fields {
        if value.is_empty() {
            return Err(format!("instance has an empty {name}"));
        }
        if value.contains('/') {
            return Err(format!("instance {name} {value:?} contains '/'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let layout = Layout::new("/apps/");
        let key = ServiceKey::new("example.Greeter", "1.0.0");
        let instance = ServiceInstance::new(&key, "127.0.0.1", 9101);
        assert_eq!(layout.key_path(&key), "/apps/example.Greeter:1.0.0");
        assert_eq!(
            layout.node_path(&instance),
            "/apps/example.Greeter:1.0.0/127.0.0.1:9101"
        );
        assert_eq!(
            parent(&layout.node_path(&instance)),
            "/apps/example.Greeter:1.0.0"
        );
        assert_eq!(Layout::new("/").root(), "/rpc");
    }

    #[test]
    fn rejects_instances_that_would_break_the_layout() {
        let key = ServiceKey::new("a/b", "1");
        assert!(check_instance(&ServiceInstance::new(&key, "h", 1)).is_err());
        let key = ServiceKey::new("a", "1");
        assert!(check_instance(&ServiceInstance::new(&key, "", 1)).is_err());
        assert!(check_instance(&ServiceInstance::new(&key, "h", 1)).is_ok());
    }
}
