//! Values that must never be shown: passwords, and registry URLs that may carry one.
//! `Debug` and `Display` print `***` in place of the secret, so a configuration can be logged.

use std::fmt;
use std::ops::Deref;

/// A password or other secret. `Debug` and `Display` print `***`; [`Secret::expose`] gives the
/// value to the one place that needs it.
///
/// ```
/// use rpc_core::config::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?} {password}"), "*** ***");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A registry URL that may carry a password (`etcd://user:password@host:port`). It reads as a
/// `&str` (the URL as given, password included, for connecting); `Debug` and `Display` show
/// it with the password as `***`.
///
/// ```
/// use rpc_core::config::SecretUrl;
///
/// let url = SecretUrl::from("etcd://root:pw@127.0.0.1:2379/rpc");
/// assert_eq!(url.to_string(), "etcd://root:***@127.0.0.1:2379/rpc");
/// assert!(!format!("{url:?}").contains("pw@"));
/// assert_eq!(&*url, "etcd://root:pw@127.0.0.1:2379/rpc");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL, password included. Never log it; log the value itself (`Display`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl(url.to_string())
    }
}

impl Deref for SecretUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// The URL with the password of its user-info part replaced by `***`
/// (`etcd://root:***@host:2379`); a URL without one is returned as it is. The user-info is
/// everything before the last `@` ahead of the query, so a `/` or `@` in a password that was
/// not percent-encoded is hidden too.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let query_start = rest.find('?').unwrap_or(rest.len());
    match rest[..query_start].rsplit_once('@') {
        Some((user_info, after)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{after}{}", &rest[query_start..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_only_the_password() {
        assert_eq!(
            redact_url("redis://me:secret@h:1/2?ttl=3"),
            "redis://me:***@h:1/2?ttl=3"
        );
        assert_eq!(redact_url("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("etcd://h:1/rpc?x=a@b"), "etcd://h:1/rpc?x=a@b");
        assert_eq!(redact_url("etcd://h:1/rpc"), "etcd://h:1/rpc");
        assert_eq!(
            redact_url("etcd://root:p/w@h:1/rpc"),
            "etcd://root:***@h:1/rpc"
        );
        assert_eq!(redact_url("etcd://root:a@b@h:1"), "etcd://root:***@h:1");
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "***");
    }
}
