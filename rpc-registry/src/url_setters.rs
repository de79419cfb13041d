//! Setters of a parsed [`RegistryUrl`], for options chosen in code: each checks its value
//! the way the URL's query would.

use std::time::Duration;

use rpc_core::registry::RegistryError;

use crate::credentials::Credentials;
use crate::options::RegistryUrl;
use crate::security::{check_tls, NodeAcl, RegistryTls};

impl RegistryUrl {
    /// Sets the lease TTL / session timeout; the heartbeat follows at ttl/3 unless set after.
    pub fn ttl(mut self, ttl: Duration) -> Result<RegistryUrl, RegistryError> {
        if ttl.is_zero() {
            return Err(bad_duration("ttl", ttl));
        }
        self.options.ttl = ttl;
        self.options.heartbeat = ttl / 3;
        Ok(self)
    }

    /// Sets the keep-alive interval; it must be shorter than the TTL.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Result<RegistryUrl, RegistryError> {
        if heartbeat.is_zero() || heartbeat >= self.options.ttl {
            return Err(RegistryError::BadOption {
                option: "heartbeat".into(),
                value: format!("{}", heartbeat.as_secs_f64()),
                expected: "seconds shorter than ttl",
            });
        }
        self.options.heartbeat = heartbeat;
        Ok(self)
    }

    /// Sets the root prefix of the layout, e.g. `/apps`.
    pub fn root(mut self, root: &str) -> Result<RegistryUrl, RegistryError> {
        let root = crate::options::root(root)?;
        self.options.root = if root.starts_with('/') {
            root
        } else {
            format!("/{root}")
        };
        Ok(self)
    }

    /// Sets the time allowed to open a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Result<RegistryUrl, RegistryError> {
        if timeout.is_zero() {
            return Err(bad_duration("connect_timeout", timeout));
        }
        self.options.connect_timeout = timeout;
        Ok(self)
    }

    /// Sets the time allowed for one registry request.
    pub fn request_timeout(mut self, timeout: Duration) -> Result<RegistryUrl, RegistryError> {
        if timeout.is_zero() {
            return Err(bad_duration("request_timeout", timeout));
        }
        self.options.request_timeout = timeout;
        Ok(self)
    }

    /// Sets the user name and password (etcd user, ZooKeeper digest, Redis ACL user).
    pub fn credentials(mut self, username: Option<String>, password: String) -> RegistryUrl {
        self.options.credentials = Some(Credentials::new(username, password));
        self
    }

    /// Sets TLS to etcd; the endpoints are then dialled as `https://`.
    pub fn tls(mut self, tls: RegistryTls) -> Result<RegistryUrl, RegistryError> {
        check_tls(Some(&tls))?;
        self.options.tls = Some(tls);
        Ok(self)
    }

    /// Sets the ACL of the ZooKeeper nodes this client creates.
    pub fn acl(mut self, acl: NodeAcl) -> RegistryUrl {
        self.options.acl = acl;
        self
    }
}

fn bad_duration(option: &str, value: Duration) -> RegistryError {
    RegistryError::BadOption {
        option: option.to_string(),
        value: format!("{}", value.as_secs_f64()),
        expected: "a positive number of seconds",
    }
}
