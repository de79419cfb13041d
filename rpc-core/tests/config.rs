//! The layered configuration: file, then environment, with errors that name the key and the
//! form it expects.

use std::time::Duration;

use rpc_core::cluster::FaultPolicy;
use rpc_core::{Codec, ConfigError, RpcConfig};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_documented_values() {
    let c = RpcConfig::default();
    assert_eq!(c.registry.as_deref(), Some("etcd://127.0.0.1:2379"));
    assert_eq!(c.listen, "127.0.0.1:0");
    assert_eq!(c.max_frame, 16 * 1024 * 1024);
    assert_eq!(c.deadline, Some(Duration::from_secs(10)));
    assert_eq!(c.balancer, "round-robin");
    assert_eq!(c.policy, FaultPolicy::Failover);
    assert_eq!(c.max_attempts, 3);
    assert!(c.empty_protection);
    assert_eq!(c.idempotent_attempt_timeout, Some(Duration::from_secs(3)));
    assert_eq!(c.ping_interval, Duration::from_millis(500));
    assert_eq!(c.ping_timeout, Duration::from_millis(1500));
    assert_eq!(c.ejection_max_percent, 50);
    let cluster = c.cluster_config();
    assert_eq!(cluster.ejection.max_ejected_fraction, 0.5);
    assert_eq!(
        cluster.idempotent_attempt_timeout,
        Some(Duration::from_secs(3))
    );
    assert_eq!(c.max_unsent_bytes, 4 * 1024 * 1024);
    assert_eq!(c.max_partial_frame_bytes, 256 * 1024 * 1024);
    assert_eq!(c.frame_timeout, Duration::from_secs(30));
    assert_eq!(c.max_connections_per_address, None);
    assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(
        (c.max_metadata_entries, c.max_metadata_bytes),
        (64, 16 * 1024)
    );
    assert_eq!(c.caller, None);
    let mut c = RpcConfig::default();
    c.merge_env(env(&[
        ("RPC_CALLER", "billing"),
        ("RPC_MAX_METADATA_ENTRIES", "8"),
        ("RPC_MAX_METADATA_BYTES", "1024"),
        ("RPC_MAX_CONNECTIONS_PER_ADDRESS", "8"),
        ("RPC_IDLE_TIMEOUT_MS", "0"),
        ("RPC_FRAME_TIMEOUT_MS", "1500"),
    ]))
    .unwrap();
    assert_eq!(c.max_connections_per_address, Some(8));
    assert_eq!(c.idle_timeout, None);
    assert_eq!(c.frame_timeout, Duration::from_millis(1500));
    assert_eq!(c.caller.as_deref(), Some("billing"));
    assert_eq!((c.max_metadata_entries, c.max_metadata_bytes), (8, 1024));
}

#[test]
fn a_file_then_an_env_override_in_the_right_precedence() {
    let dir = std::env::temp_dir().join(format!("rpc-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rpc.toml");
    std::fs::write(
        &file,
        r#"
[registry]
url = "etcd://10.0.0.1:2379"
ttl_secs = 5

[server]
listen = "127.0.0.1:9101"
max_frame_bytes = 1048576

[client]
deadline_ms = 2500
balancer = "least-loaded"
policy = "failfast"
codec = "json"

[client.ejection]
consecutive_failures = 5
"#,
    )
    .unwrap();
    let mut c = RpcConfig::default();
    c.merge_toml(&std::fs::read_to_string(&file).unwrap(), "rpc.toml")
        .unwrap();
    c.merge_env(env(&[
        ("RPC_REGISTRY", "zookeeper://127.0.0.1:2181"),
        ("RPC_DEADLINE_MS", "700"),
        ("HOME", "/ignored"),
    ]))
    .unwrap();
    // Environment wins over the file ...
    assert_eq!(c.registry.as_deref(), Some("zookeeper://127.0.0.1:2181"));
    assert_eq!(c.deadline, Some(Duration::from_millis(700)));
    // ... the file wins over defaults where the environment is silent ...
    assert_eq!(c.registry_ttl, Some(Duration::from_secs(5)));
    assert_eq!(c.listen, "127.0.0.1:9101");
    assert_eq!(c.max_frame, 1_048_576);
    assert_eq!(c.balancer, "least-loaded");
    assert_eq!(c.policy, FaultPolicy::Failfast);
    assert_eq!(c.codec, Codec::Json);
    assert_eq!(c.ejection_failures, 5);
    // ... and code (the builder layer) wins over both.
    c.max_attempts = 7;
    assert_eq!(c.cluster_config().max_attempts, 7);
    assert_eq!(
        c.registry_url().as_deref(),
        Some("zookeeper://127.0.0.1:2181?ttl=5")
    );

    // RpcConfig::load reads the file and then the real environment.
    let loaded = RpcConfig::load(Some(&file)).unwrap();
    assert_eq!(loaded.listen, "127.0.0.1:9101");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_bad_value_names_its_key_and_the_form_expected() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[registry]\nurl = \"localhost:2379\"",
            "registry.url",
            "registry URL",
        ),
        (
            "[registry]\nttl_secs = -1",
            "registry.ttl_secs",
            "positive number of seconds",
        ),
        (
            "[registry]\nheartbeat_secs = \"x\"",
            "registry.heartbeat_secs",
            "positive number of seconds",
        ),
        (
            "[registry]\nttl_secs = 2\nheartbeat_secs = 3",
            "registry.heartbeat_secs",
            "shorter than",
        ),
        (
            "[server]\nlisten = \"nowhere\"",
            "server.listen",
            "host:port",
        ),
        ("[server]\nadmin = \"no-port\"", "server.admin", "host:port"),
        (
            "[server]\nmax_frame_bytes = 10",
            "server.max_frame_bytes",
            "1024",
        ),
        (
            "[server]\nmax_connections = 0",
            "server.max_connections",
            "positive integer",
        ),
        (
            "[server]\nmax_in_flight = \"many\"",
            "server.max_in_flight",
            "positive integer",
        ),
        (
            "[server]\nmax_metadata_entries = 0",
            "server.max_metadata_entries",
            "from 1 to 65535",
        ),
        (
            "[server]\nmax_metadata_bytes = -5",
            "server.max_metadata_bytes",
            "positive number of bytes",
        ),
        ("[client]\ncaller = \"\"", "client.caller", "rpc-caller"),
        (
            "[server]\ndrain_grace_ms = 1.5",
            "server.drain_grace_ms",
            "milliseconds",
        ),
        (
            "[server]\npropagation_grace_ms = -5",
            "server.propagation_grace_ms",
            "milliseconds",
        ),
        (
            "[client]\ndeadline_ms = \"soon\"",
            "client.deadline_ms",
            "milliseconds",
        ),
        (
            "[client]\nconnect_timeout_ms = 0",
            "client.connect_timeout_ms",
            "positive",
        ),
        ("[client]\ncodec = \"xml\"", "client.codec", "bincode"),
        (
            "[client]\nconnections_per_address = 0",
            "client.connections_per_address",
            "positive integer",
        ),
        (
            "[client]\nbalancer = \"fastest\"",
            "client.balancer",
            "round-robin",
        ),
        ("[client]\npolicy = \"retry\"", "client.policy", "failover"),
        (
            "[client]\nmax_attempts = 0",
            "client.max_attempts",
            "positive integer",
        ),
        (
            "[client]\nbackoff_base_ms = true",
            "client.backoff_base_ms",
            "milliseconds",
        ),
        (
            "[client]\nbackoff_max_ms = \"x\"",
            "client.backoff_max_ms",
            "milliseconds",
        ),
        (
            "[client]\nbackoff_base_ms = 500\nbackoff_max_ms = 100",
            "client.backoff_base_ms",
            "at most",
        ),
        (
            "[client]\nattempt_timeout_ms = -1",
            "client.attempt_timeout_ms",
            "milliseconds",
        ),
        (
            "[client]\nidempotent_attempt_timeout_ms = -1",
            "client.idempotent_attempt_timeout_ms",
            "milliseconds",
        ),
        (
            "[client]\nping_interval_ms = \"often\"",
            "client.ping_interval_ms",
            "milliseconds",
        ),
        (
            "[client]\nping_timeout_ms = 0",
            "client.ping_timeout_ms",
            "positive",
        ),
        (
            "[client.ejection]\nmax_ejected_percent = 150",
            "client.ejection.max_ejected_percent",
            "percentage",
        ),
        (
            "[server]\nadvertise = \"0.0.0.0:9101\"",
            "server.advertise",
            "HOST[:PORT]",
        ),
        (
            "[client]\nempty_protection = \"maybe\"",
            "client.empty_protection",
            "true or false",
        ),
        (
            "[client]\ndirectory_idle_ms = -5",
            "client.directory_idle_ms",
            "milliseconds",
        ),
        (
            "[client]\nmax_watches = 0",
            "client.max_watches",
            "positive",
        ),
        (
            "[client]\nsnapshot_file = 3",
            "client.snapshot_file",
            "file path",
        ),
        (
            "[client.ejection]\nconsecutive_failures = -2",
            "client.ejection.consecutive_failures",
            "integer",
        ),
        (
            "[client.ejection]\nbase_cooldown_ms = 0",
            "client.ejection.base_cooldown_ms",
            "positive",
        ),
        (
            "[client.ejection]\nmax_cooldown_ms = \"x\"",
            "client.ejection.max_cooldown_ms",
            "positive",
        ),
        (
            "[server]\nmax_connections_per_address = -1",
            "server.max_connections_per_address",
            "0 = no cap",
        ),
        (
            "[server]\nmax_unsent_bytes = 0",
            "server.max_unsent_bytes",
            "positive number of bytes",
        ),
        (
            "[server]\nmax_partial_frame_bytes = 1024",
            "server.max_partial_frame_bytes",
            "at least server.max_frame_bytes + 4",
        ),
        (
            "[server]\nframe_timeout_ms = 0",
            "server.frame_timeout_ms",
            "positive",
        ),
        (
            "[server]\nidle_timeout_ms = \"soon\"",
            "server.idle_timeout_ms",
            "0 = never",
        ),
        (
            "[client]\ntag = \"gray release\"",
            "client.tag",
            "routing tag",
        ),
        (
            "[client]\nbalancr = \"random\"",
            "client.balancr",
            "known keys",
        ),
        (
            "[registry]\nusername = \"\"",
            "registry.username",
            "user name",
        ),
        ("[registry]\npassword = 1", "registry.password", "password"),
        (
            "[registry]\npassword_file = 1",
            "registry.password_file",
            "file path",
        ),
        ("[registry.tls]\nca = \"\"", "registry.tls.ca", "PEM file"),
        ("[registry.tls]\ncert = 1", "registry.tls.cert", "PEM file"),
        (
            "[registry.tls]\nkey = false",
            "registry.tls.key",
            "PEM file",
        ),
        ("[registry]\nacl = \"world\"", "registry.acl", "creator"),
        ("[client\nbroken", "rpc.toml", "not valid TOML"),
        (
            "[server.tls]\ncert = 5",
            "server.tls.cert",
            "certificate chain",
        ),
        ("[server.tls]\nkey = 5", "server.tls.key", "private key"),
        (
            "[server.tls]\nclient_ca = 5",
            "server.tls.client_ca",
            "client certificates",
        ),
        (
            "[server.auth]\ntokens_file = 5",
            "server.auth.tokens_file",
            "caller-name token",
        ),
        (
            "[server.auth]\nallow = [\"example.Admin\"]",
            "server.auth.allow",
            "service=caller",
        ),
        ("[client.tls]\nca = []", "client.tls.ca", "CA certificates"),
        (
            "[client.tls]\ncert = 5",
            "client.tls.cert",
            "certificate chain",
        ),
        ("[client.tls]\nkey = 5", "client.tls.key", "private key"),
        (
            "[client.tls]\nserver_name = \"\"",
            "client.tls.server_name",
            "DNS name",
        ),
        (
            "[client.tls]\nplatform_roots = \"yes\"",
            "client.tls.platform_roots",
            "true or false",
        ),
        (
            "[client.auth]\ntoken = \"two words\"",
            "client.auth.token",
            "bearer token",
        ),
        (
            "[client.auth]\ntoken_file = \"/no/such/token\"",
            "client.auth.token_file",
            "readable file",
        ),
    ];
    // Every key has a bad-value case above.
    for (name, _, _) in RpcConfig::keys() {
        assert!(
            cases.iter().any(|(_, key, _)| *key == name),
            "no bad-value case for {name}"
        );
    }
    for (text, key, expected) in cases {
        let err = RpcConfig::default()
            .merge_toml(text, "rpc.toml")
            .expect_err(text)
            .to_string();
        assert!(err.contains(key), "{text:?}: {err}");
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_MAX_ATTEMPTS", "lots")]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::BadValue { .. }));
    let text = err.to_string();
    assert!(
        text.contains("RPC_MAX_ATTEMPTS") && text.contains("positive integer"),
        "{text}"
    );
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_BALANCR", "random")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RPC_BALANCR") && err.contains("RPC_BALANCER"),
        "{err}"
    );
}

#[test]
fn readme_documents_every_key_and_variable() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the workspace root");
    for (name, env, _) in RpcConfig::keys() {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not document {name}"
        );
        assert!(
            readme.contains(&format!("`{env}`")),
            "README does not document {env}"
        );
    }
}

#[test]
fn every_built_in_codec_name_is_a_client_codec_value() {
    for codec in Codec::BUILT_IN {
        let mut c = RpcConfig::default();
        c.merge_env(env(&[("RPC_CODEC", codec.name())]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.codec, codec);
    }
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_CODEC", "cbor")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("postcard"), "{err}");
}

#[test]
fn a_bearer_token_never_shows_in_errors_or_debug() {
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_AUTH_TOKEN", "s3cret with-space")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("client.auth.token") && !err.contains("s3cret"),
        "{err}"
    );
    let mut config = RpcConfig::default();
    config
        .merge_env(env(&[("RPC_AUTH_TOKEN", "s3cret-token")]))
        .unwrap();
    assert!(!format!("{config:?}").contains("s3cret"));
    assert!(!format!("{:?}", config.client_builder()).contains("s3cret"));
}

#[test]
fn tls_and_auth_settings_that_need_each_other_are_refused_alone() {
    for (vars, named) in [
        (&[("RPC_TLS_CERT", "a.pem")][..], "server.tls.cert"),
        (&[("RPC_TLS_CLIENT_CA", "ca.pem")][..], "server.tls.cert"),
        (&[("RPC_TLS_CLIENT_CERT", "c.pem")][..], "client.tls.cert"),
        (
            &[("RPC_AUTH_ALLOW", "example.Admin=ops")][..],
            "server.auth.allow",
        ),
    ] {
        let err = RpcConfig::default()
            .merge_env(env(vars))
            .unwrap_err()
            .to_string();
        assert!(err.contains(named), "{err}");
    }
    let mut config = RpcConfig::default();
    config
        .merge_toml(
            "[server.tls]\ncert = \"a.pem\"\nkey = \"a.key\"\n[server.auth]\ntokens_file = \"t\"\nallow = [\"example.Admin=ops\", \"example.Greeter:2.0.0=web,ops\"]\n[client.tls]\nca = [\"ca1.pem\", \"ca2.pem\"]",
            "rpc.toml",
        )
        .unwrap();
    assert_eq!(config.client_tls.ca.len(), 2);
    assert_eq!(config.auth_allow["example.Greeter:2.0.0"].len(), 2);
}

#[test]
fn registry_credentials_tls_and_acl_keys_and_the_password_is_never_shown() {
    let mut c = RpcConfig::default();
    c.merge_toml(
        "[registry]\nurl = \"etcd://root:url-S3cret@10.0.0.1:2379\"\nusername = \"app\"\n\
         password_file = \"/run/secrets/etcd\"\nacl = \"open\"\n\
         [registry.tls]\nca = \"/ca.pem\"\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
        "rpc.toml",
    )
    .unwrap();
    c.merge_env(env(&[("RPC_REGISTRY_PASSWORD", "env-S3cret")]))
        .unwrap();
    assert_eq!(c.registry_username.as_deref(), Some("app"));
    assert_eq!(
        c.registry_password.as_ref().map(|p| p.expose()),
        Some("env-S3cret")
    );
    assert_eq!(
        c.registry_password_file.as_deref(),
        Some(std::path::Path::new("/run/secrets/etcd"))
    );
    assert_eq!(
        c.registry_tls_key.as_deref(),
        Some(std::path::Path::new("/k.pem"))
    );
    assert_eq!(c.registry_acl.as_deref(), Some("open"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("S3cret"), "{shown}");
    assert!(shown.contains("etcd://root:***@10.0.0.1:2379"), "{shown}");

    let err = RpcConfig::default()
        .merge_toml("[registry]\npassword = 12345678", "rpc.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("registry.password") && err.contains("***"),
        "{err}"
    );
    assert!(!err.contains("12345678"), "{err}");
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_REGISTRY_TLS_CERT", "/c.pem")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry.tls.key"), "{err}");
    let err = RpcConfig::default()
        .merge_env(env(&[("RPC_REGISTRY_ACL", "closed")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry.acl"), "{err}");
}
