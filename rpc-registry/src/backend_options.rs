//! URL parts only one backend takes: the Redis database number (the URL's path) and the
//! Nacos namespace and group (query options).

use rpc_core::registry::RegistryError;

/// Checks a Nacos namespace or group: letters, digits, `.`, `:`, `_` and `-` (what Nacos
/// itself accepts), so no `@@` (the SDK's group separator) can slip in.
pub(crate) fn nacos_name(option: &str, value: &str) -> Result<(), RegistryError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadOption {
            option: option.to_string(),
            value: value.to_string(),
            expected: "1-128 letters, digits, '.', ':', '_' or '-'",
        })
    }
}

/// The database number of a `redis://host:port/<db>` URL.
pub(crate) fn redis_db(path: &str) -> Result<u32, String> {
    let db = path.trim_matches('/');
    if db.is_empty() {
        return Ok(0);
    }
    db.parse::<u32>().map_err(|_| {
        format!(
            "redis:// takes a database number as its path, not {path:?}; set the root with ?root="
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::options::{RegistryUrl, Scheme};

    #[test]
    fn redis_urls_carry_db_credentials_and_root_from_the_query() {
        let url = RegistryUrl::parse("redis://app:pw@127.0.0.1:6379/3?root=/apps&ttl=2").unwrap();
        assert_eq!(url.scheme, Scheme::Redis);
        assert_eq!(url.endpoints, vec!["127.0.0.1:6379"]);
        assert_eq!(url.options.db, 3);
        assert_eq!(url.options.root, "/apps");
        assert_eq!(url.options.credentials.as_ref().unwrap().password(), "pw");
        assert_eq!(
            url.original,
            "redis://app:***@127.0.0.1:6379/3?root=/apps&ttl=2"
        );
        assert!(!format!("{url:?}").contains("pw"));
        let err = RegistryUrl::parse("redis://app:pw@h:1?nope=1").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let nacos =
            RegistryUrl::parse("nacos://127.0.0.1:8848?namespace=dev&group=rpc&grpc_port=9849")
                .unwrap();
        assert_eq!(nacos.scheme, Scheme::Nacos);
        assert_eq!(
            (
                nacos.options.namespace.as_str(),
                nacos.options.group.as_str()
            ),
            ("dev", "rpc")
        );
        assert_eq!(nacos.options.grpc_port, Some(9849));
        let plain = RegistryUrl::parse("nacos://127.0.0.1:8848").unwrap();
        assert_eq!(
            (
                plain.options.namespace.as_str(),
                plain.options.group.as_str()
            ),
            ("", "DEFAULT_GROUP")
        );
        for (url, needle) in [
            ("nacos://h:1/x", "no path"),
            ("nacos://h:1?group=a@@b", "group"),
            ("nacos://h:1?root=/x", "unknown option"),
            ("redis://h:1?group=x", "unknown option"),
        ] {
            let err = RegistryUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
        let plain = RegistryUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((plain.options.db, plain.options.root.as_str()), (0, "/rpc"));
    }
}
