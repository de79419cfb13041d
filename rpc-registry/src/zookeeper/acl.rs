//! The ACLs of the nodes a ZooKeeper registry creates, and the digest auth that gives the
//! session the identity those ACLs name.
//!
//! With credentials and the default `acl=creator`:
//! - instance nodes: the creator's identity (every session authenticated as the same digest
//!   user) may do anything; everyone else may only read;
//! - persistent parents and governance documents: the same, plus `create` for everyone, so
//!   providers of other users can still add their own nodes. ZooKeeper checks a delete against
//!   the *parent's* ACL, which therefore holds no `delete` for the world: an unauthenticated
//!   client can list and read a provider's node but can neither delete nor overwrite it.
//!
//! `acl=open` (or no credentials: there is no identity to grant) keeps ZooKeeper's
//! `world:anyone:cdrwa` on every node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use rpc_core::registry::RegistryError;
use zookeeper_client as zk;

use super::REGISTRY;
use crate::options::RegistryOptions;
use crate::security::NodeAcl;

static NODE: LazyLock<[zk::Acl; 2]> = LazyLock::new(|| {
    [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
        zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
    ]
});

static PARENT: LazyLock<[zk::Acl; 2]> = LazyLock::new(|| {
    [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("auth", "")),
        zk::Acl::new(
            zk::Permission::READ | zk::Permission::CREATE,
            zk::AuthId::anyone(),
        ),
    ]
});

/// The ACLs to create nodes with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeAcls {
    node: zk::Acls<'static>,
    parent: zk::Acls<'static>,
}

impl NodeAcls {
    /// The ACLs `options` ask for, for a node about to be created: creator-all-world-read
    /// with credentials (unless `acl=open`), else open.
    pub(crate) fn of(options: &RegistryOptions) -> NodeAcls {
        warn_if_open(options);
        match (options.acl, &options.credentials) {
            (NodeAcl::CreatorAllWorldRead, Some(_)) => NodeAcls {
                node: zk::Acls::new(NODE.as_slice()),
                parent: zk::Acls::new(PARENT.as_slice()),
            },
            _ => NodeAcls {
                node: zk::Acls::anyone_all(),
                parent: zk::Acls::anyone_all(),
            },
        }
    }

    /// Options for an instance node: ephemeral.
    pub(crate) fn ephemeral(self) -> zk::CreateOptions<'static> {
        zk::CreateMode::Ephemeral.with_acls(self.node)
    }

    /// Options for the persistent nodes: provider parents and governance documents.
    pub(crate) fn persistent(self) -> zk::CreateOptions<'static> {
        zk::CreateMode::Persistent.with_acls(self.parent)
    }
}

/// The digest auth of the URL's credentials (`user:password`), added to every session this
/// registry opens, the ones that replace an expired session included.
pub(crate) fn digest(options: &RegistryOptions) -> Result<Option<Vec<u8>>, RegistryError> {
    let Some(credentials) = &options.credentials else {
        return Ok(None);
    };
    let user = credentials
        .username()
        .ok_or_else(|| RegistryError::BadOption {
            option: "username".into(),
            value: String::new(),
            expected: "a user name: ZooKeeper digest auth takes user:password",
        })?;
    if user.contains(':') {
        return Err(RegistryError::BadOption {
            option: "username".into(),
            value: user.to_string(),
            expected: "a user name without ':' (ZooKeeper digest auth is user:password)",
        });
    }
    Ok(Some(
        format!("{user}:{}", credentials.password()).into_bytes(),
    ))
}

/// Says once per process, on the first node created, when nodes are left open to everyone
/// although the default asks for creator-only writes (a reader, such as rpcctl, never does).
fn warn_if_open(options: &RegistryOptions) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if options.acl == NodeAcl::CreatorAllWorldRead
        && options.credentials.is_none()
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            registry = REGISTRY,
            "no credentials: nodes are created open to every client (world:anyone:cdrwa); \
             give user:password@ (digest auth) so that only this user may change them"
        );
    }
}
