//! Credentials a registry URL carries (`etcd://user:password@host:port`, the same for
//! `zookeeper://` and `redis://`), kept out of every log, `Debug` output and error message.

use std::fmt;

/// A user name and password from a registry URL's user-info part.
///
/// `Debug` shows the user name and hides the password, so options and URLs can be logged.
///
/// ```
/// use rpc_registry::RegistryUrl;
///
/// let url = RegistryUrl::parse("redis://app:s%40cret@127.0.0.1:6379").unwrap();
/// let credentials = url.options.credentials.clone().unwrap();
/// assert_eq!(credentials.username(), Some("app"));
/// assert_eq!(credentials.password(), "s@cret");
/// assert!(!format!("{url:?}").contains("cret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: String,
}

impl Credentials {
    /// Credentials with an optional user name (`None` for Redis's `default` user).
    pub fn new(username: Option<String>, password: String) -> Credentials {
        Credentials { username, password }
    }

    /// The user name, if one was given.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password. Never log it.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Splits `user:password@hosts` into the credentials and the hosts. The user-info part is
/// percent-decoded, so a password may hold any character (`%40` for `@`, `%3A` for `:`).
pub(crate) fn split_user_info(hosts: &str) -> Result<(Option<Credentials>, &str), String> {
    let Some((user_info, hosts)) = hosts.rsplit_once('@') else {
        return Ok((None, hosts));
    };
    let (user, password) = user_info
        .split_once(':')
        .ok_or("credentials must be user:password@ or :password@")?;
    let decode = |part: &str, what: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| format!("the {what} is not UTF-8 once percent-decoded"))
    };
    let user = decode(user, "user name")?;
    let password = decode(password, "password")?;
    let username = (!user.is_empty()).then_some(user);
    Ok((Some(Credentials::new(username, password)), hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_split_and_decoded() {
        let (creds, hosts) = split_user_info("me:p%3Aw@d@h:1").unwrap();
        let creds = creds.unwrap();
        assert_eq!(hosts, "h:1");
        assert_eq!(creds.username(), Some("me"));
        assert_eq!(creds.password(), "p:w@d");
        let (creds, _) = split_user_info(":only@h:1").unwrap();
        assert_eq!(creds.unwrap().username(), None);
        assert!(split_user_info("nopassword@h:1").is_err());
        assert_eq!(split_user_info("h:1").unwrap().0, None);
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", Credentials::new(Some("me".into()), "secret".into()));
        assert!(
            !shown.contains("secret") && shown.contains("***"),
            "{shown}"
        );
    }
}
