//! Security options of a registry URL: etcd TLS files (`?tls_ca=…&tls_cert=…&tls_key=…`),
//! the ZooKeeper ACL of created nodes (`?acl=open`), and the same (plus credentials) taken
//! from an [`RpcConfig`]'s `registry.*` keys.

use std::path::{Path, PathBuf};

use rpc_core::config::redact_url;
use rpc_core::registry::RegistryError;
use rpc_core::RpcConfig;

use crate::credentials::Credentials;
use crate::options::{RegistryOptions, RegistryUrl, Scheme};

/// TLS to etcd: the CA that signed the server's certificate, and optionally a client
/// certificate and key (for etcd's `--client-cert-auth`). The files are PEM, read when
/// connecting. With TLS, the endpoints are dialled as `https://`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryTls {
    /// CA certificate(s) that signed the server's certificate (`tls_ca`).
    pub ca: Option<PathBuf>,
    /// Client certificate (`tls_cert`); needs `key`.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (`tls_key`); needs `cert`.
    pub key: Option<PathBuf>,
}

/// The ACL of the nodes a ZooKeeper registry creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeAcl {
    /// The creating session's identity may do anything, everyone else only read (`creator`,
    /// the default): another client can list and read a provider's node but not delete or
    /// overwrite it. Without credentials this falls back to `Open` (ZooKeeper has no
    /// identity to grant), with a warning.
    #[default]
    CreatorAllWorldRead,
    /// Anyone may do anything (`open`): ZooKeeper's `world:anyone:cdrwa`.
    Open,
}

impl NodeAcl {
    /// Parses `creator` or `open`.
    pub fn parse(value: &str) -> Result<NodeAcl, RegistryError> {
        match value {
            "creator" => Ok(NodeAcl::CreatorAllWorldRead),
            "open" => Ok(NodeAcl::Open),
            _ => Err(RegistryError::BadOption {
                option: "acl".into(),
                value: value.into(),
                expected: "creator (creator all, world read) or open (anyone all)",
            }),
        }
    }
}

/// The query options of this file a scheme takes, for the "unknown option" message.
pub(crate) fn options_of(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Etcd => ", tls_ca, tls_cert, tls_key",
        Scheme::Zookeeper => ", acl",
        _ => "",
    }
}

/// Applies `key=value` if it is a security option `scheme` takes; `None` if it is not one.
pub(crate) fn apply_query_option(
    scheme: Scheme,
    options: &mut RegistryOptions,
    key: &str,
    value: &str,
) -> Option<Result<(), RegistryError>> {
    let field = match (scheme, key) {
        (Scheme::Etcd, "tls_ca" | "tls_cert" | "tls_key") => key,
        (Scheme::Zookeeper, "acl") => {
            return Some(NodeAcl::parse(value).map(|acl| options.acl = acl));
        }
        _ => return None,
    };
    let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    if decoded.is_empty() {
        return Some(Err(RegistryError::BadOption {
            option: key.into(),
            value: value.into(),
            expected: "a PEM file path",
        }));
    }
    let path = Some(PathBuf::from(decoded.as_ref()));
    let tls = options.tls.get_or_insert_with(RegistryTls::default);
    match field {
        "tls_ca" => tls.ca = path,
        "tls_cert" => tls.cert = path,
        _ => tls.key = path,
    }
    Some(Ok(()))
}

/// Checks the TLS options once the URL is read: a certificate needs its key.
pub(crate) fn check_tls(tls: Option<&RegistryTls>) -> Result<(), RegistryError> {
    match tls {
        Some(RegistryTls { cert, key, .. }) if cert.is_some() != key.is_some() => {
            Err(RegistryError::BadOption {
                option: if cert.is_some() {
                    "tls_cert"
                } else {
                    "tls_key"
                }
                .into(),
                value: "given alone".into(),
                expected: "tls_cert and tls_key together",
            })
        }
        _ => Ok(()),
    }
}

/// Reads a password file: its text, less one trailing newline.
fn read_password_file(path: &Path) -> Result<String, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|e| RegistryError::BadOption {
        option: "registry.password_file".into(),
        value: path.display().to_string(),
        expected: if e.kind() == std::io::ErrorKind::NotFound {
            "a file that exists"
        } else {
            "a readable UTF-8 file"
        },
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

impl RegistryUrl {
    /// The registry URL of a configuration (`registry.url` with `ttl_secs` and
    /// `heartbeat_secs`), with the `registry.*` security keys applied over the URL's own:
    /// `username`, `password` or `password_file` (read now), `tls.*` and `acl`. `None` when
    /// the configuration has no registry.
    pub fn from_config(config: &RpcConfig) -> Result<Option<RegistryUrl>, RegistryError> {
        let Some(text) = config.registry_url() else {
            return Ok(None);
        };
        let mut url = RegistryUrl::parse(&text)?;
        let password = match (&config.registry_password, &config.registry_password_file) {
            (Some(password), _) => Some(password.expose().to_string()),
            (None, Some(file)) => Some(read_password_file(file)?),
            (None, None) => None,
        };
        let username = config.registry_username.clone().or_else(|| {
            url.options
                .credentials
                .as_ref()?
                .username()
                .map(String::from)
        });
        match password {
            Some(password) => url.options.credentials = Some(Credentials::new(username, password)),
            None if config.registry_username.is_some() => {
                let password = url.options.credentials.as_ref().map(|c| c.password());
                let password = password.ok_or_else(|| RegistryError::BadUrl {
                    url: redact_url(&text),
                    message: "registry.username is set but no password: set registry.password, \
                              registry.password_file or RPC_REGISTRY_PASSWORD"
                        .into(),
                })?;
                url.options.credentials = Some(Credentials::new(username, password.to_string()));
            }
            None => {}
        }
        let tls_keys = [
            &config.registry_tls_ca,
            &config.registry_tls_cert,
            &config.registry_tls_key,
        ];
        if tls_keys.iter().any(|k| k.is_some()) {
            let tls = url.options.tls.get_or_insert_with(RegistryTls::default);
            let [ca, cert, key] = tls_keys.map(Clone::clone);
            tls.ca = ca.or(tls.ca.take());
            tls.cert = cert.or(tls.cert.take());
            tls.key = key.or(tls.key.take());
            check_tls(Some(tls))?;
        }
        if let Some(acl) = &config.registry_acl {
            url.options.acl = NodeAcl::parse(acl)?;
        }
        Ok(Some(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_and_zookeeper_urls_keep_user_info_out_of_endpoints_and_messages() {
        for (url, scheme) in [
            ("etcd://root:p%40ss/w@127.0.0.1:2379/apps", Scheme::Etcd),
            (
                "zookeeper://app:p%40ss/w@127.0.0.1:2181/apps",
                Scheme::Zookeeper,
            ),
        ] {
            let parsed = RegistryUrl::parse(url).unwrap();
            assert_eq!(parsed.scheme, scheme);
            assert_eq!(parsed.endpoints.len(), 1);
            assert!(parsed.endpoints[0].starts_with("127.0.0.1:"), "{parsed:?}");
            assert_eq!(parsed.options.root, "/apps");
            let credentials = parsed.options.credentials.clone().unwrap();
            assert_eq!(credentials.password(), "p@ss/w");
            assert!(parsed.original.contains(":***@"), "{}", parsed.original);
            for shown in [format!("{parsed:?}"), parsed.to_string()] {
                assert!(!shown.contains("ss/w"), "{shown}");
            }
        }
        let bad = RegistryUrl::parse("etcd://root:hunter2@127.0.0.1:99999").unwrap_err();
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
        let nacos = RegistryUrl::parse("nacos://u:hunter2@127.0.0.1:8848").unwrap_err();
        assert!(nacos.to_string().contains("no user:password"), "{nacos}");
        assert!(!nacos.to_string().contains("hunter2"), "{nacos}");
    }

    #[test]
    fn tls_and_acl_options_belong_to_their_backend() {
        let url = RegistryUrl::parse("etcd://h:1?tls_ca=/ca.pem&tls_cert=/c.pem&tls_key=/k%20.pem")
            .unwrap();
        let tls = url.options.tls.unwrap();
        assert_eq!(tls.ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(tls.key, Some(PathBuf::from("/k .pem")));
        assert_eq!(RegistryUrl::parse("etcd://h:1").unwrap().options.tls, None);
        let zk = RegistryUrl::parse("zk://h:1?acl=open").unwrap();
        assert_eq!(zk.options.acl, NodeAcl::Open);
        assert_eq!(zk.options.tls, None);
        for (url, needle) in [
            ("etcd://h:1?tls_cert=/c.pem", "tls_cert"),
            ("etcd://h:1?acl=open", "unknown option"),
            ("zk://h:1?tls_ca=/ca.pem", "unknown option"),
            ("zk://h:1?acl=closed", "acl"),
            ("etcd://h:1?tls_ca=", "tls_ca"),
        ] {
            let err = RegistryUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn config_keys_override_the_url_and_never_show_the_password() {
        let dir = std::env::temp_dir().join(format!("rpc-registry-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "from-file-S3cret\n").unwrap();
        let mut config = RpcConfig::default();
        config.registry = Some("etcd://url-user:url-S3cret@127.0.0.1:2379".into());
        config.registry_password_file = Some(file.clone());
        config.registry_tls_ca = Some(PathBuf::from("/ca.pem"));
        let url = RegistryUrl::from_config(&config).unwrap().unwrap();
        let credentials = url.options.credentials.clone().unwrap();
        assert_eq!(credentials.username(), Some("url-user"));
        assert_eq!(credentials.password(), "from-file-S3cret");
        assert_eq!(
            url.options.tls.clone().unwrap().ca,
            Some(PathBuf::from("/ca.pem"))
        );
        config.registry_username = Some("key-user".into());
        config.registry_password = Some(rpc_core::config::Secret::new("from-key-S3cret"));
        let url = RegistryUrl::from_config(&config).unwrap().unwrap();
        let credentials = url.options.credentials.clone().unwrap();
        assert_eq!(credentials.username(), Some("key-user"));
        assert_eq!(credentials.password(), "from-key-S3cret");
        for shown in [format!("{config:?}"), format!("{url:?}")] {
            assert!(!shown.contains("S3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        let mut no_password = RpcConfig::default();
        no_password.registry_username = Some("app".into());
        let err = RegistryUrl::from_config(&no_password)
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry.password"), "{err}");
        no_password.registry_password_file = Some(dir.join("missing"));
        let err = RegistryUrl::from_config(&no_password)
            .unwrap_err()
            .to_string();
        assert!(err.contains("password_file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
