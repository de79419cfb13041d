//! Registries with credentials and TLS, against real servers:
//! - etcd with users (`auth enable`) and client-certificate TLS: providers register (password
//!   from the URL or from `RPC_REGISTRY_PASSWORD`), a consumer discovers, watches and calls,
//!   rpcctl lists; a wrong password is a clear error naming the endpoint; the lease keeper
//!   and watches outlive etcd's auth token (a short `--auth-token-ttl`);
//! - ZooKeeper with digest auth: a provider's node is readable by everyone but cannot be
//!   deleted or overwritten by an unauthenticated client (`NoAuth`), also after the session
//!   expired and the node was re-created;
//! - every spawned process runs with `RUST_LOG=trace`, and no password appears in anything
//!   it printed (stdout, stderr, `--json`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use example_provider::GreeterClient;
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey};
use tests::etcd_secure::{SecureEtcd, APP_PASSWORD, APP_USER};
use tests::process::binary;
use tests::wait::{wait_until, watch_until};
use tests::zookeeper::ZookeeperServer;
use zookeeper_client as zk;

/// How long a registration, a watch event or a process may take here.
const PATIENCE: Duration = Duration::from_secs(20);
/// A password no server knows.
const WRONG_PASSWORD: &str = "Wr0ng-Pa55-xyzzy";
/// The ZooKeeper digest password.
const ZK_PASSWORD: &str = "zk-Digest-Pa55-S3cret";

fn greeter_key() -> ServiceKey {
    ServiceKey::new("example.Greeter", "1.0.0")
}

/// A spawned workspace binary at `RUST_LOG=trace`, its stdout and stderr in files.
struct Spawned {
    name: String,
    child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// What a process printed.
struct Printed {
    name: String,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Spawned {
    fn start(dir: &Path, name: &str, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let file = |path: &Path| {
            std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
        };
        let child = tokio::process::Command::new(binary(bin))
            .args(args)
            .env_remove("RPC_REGISTRY")
            .envs(env.iter().copied())
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Spawned {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// A provider on a free loopback port, registered in `registry`.
    fn provider(dir: &Path, name: &str, registry: &str, env: &[(&str, &str)]) -> Spawned {
        let args = ["--listen", "127.0.0.1:0", "--registry", registry];
        Spawned::start(dir, name, "example-provider", &args, env)
    }

    /// Waits for the process to exit (killing it after `timeout`), and reads its output.
    async fn finish(mut self, timeout: Duration) -> Printed {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        self.printed(status)
    }

    /// Kills the process and reads its output.
    async fn stop(mut self) -> Printed {
        let _ = self.child.kill().await;
        self.printed(None)
    }

    fn printed(&self, status: Option<ExitStatus>) -> Printed {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        Printed {
            name: self.name.clone(),
            status,
            stdout: read(&self.stdout),
            stderr: read(&self.stderr),
        }
    }
}

/// Asserts that no secret appears in anything the processes printed, and that they did
/// print (a trace log that is empty would prove nothing).
fn assert_no_secret(printed: &[Printed], secrets: &[&str]) {
    for p in printed {
        assert!(
            !p.stderr.is_empty() || !p.stdout.is_empty(),
            "{}: nothing captured; stderr: {}",
            p.name,
            p.stderr
        );
        for secret in secrets {
            for (stream, text) in [("stdout", &p.stdout), ("stderr", &p.stderr)] {
                if let Some(at) = text.find(secret) {
                    let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let line = text[from..].lines().next().unwrap_or_default();
                    panic!("{}: a password in its {stream}: {line}", p.name);
                }
            }
        }
    }
}

async fn connect(url: &str) -> Arc<dyn Registry> {
    rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("registry-security-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"))
}

#[tokio::test]
async fn etcd_with_users_and_client_cert_tls_serves_providers_consumers_and_rpcctl() {
    let etcd = SecureEtcd::start(Duration::from_secs(60)).await;
    let dir = temp_dir();
    let from_url = Spawned::provider(dir.path(), "provider-url", &etcd.registry_url("ttl=2"), &[]);
    let consumer = connect(&etcd.registry_url("ttl=2")).await;
    let mut watch = consumer
        .watch(&greeter_key())
        .await
        .unwrap_or_else(|e| panic!("watch: {e}"));
    watch_until(&mut watch, PATIENCE, "the first provider", |list| {
        list.len() == 1
    })
    .await
    .unwrap();
    // The second takes its password from the environment, its URL has none.
    let bare_url = format!("etcd://{}?{}&ttl=2", etcd.endpoint(), etcd.tls_query());
    let from_env = Spawned::provider(
        dir.path(),
        "provider-env",
        &bare_url,
        &[
            ("RPC_REGISTRY_USERNAME", APP_USER),
            ("RPC_REGISTRY_PASSWORD", APP_PASSWORD),
        ],
    );
    watch_until(&mut watch, PATIENCE, "both providers", |list| {
        list.len() == 2
    })
    .await
    .unwrap();
    let greeter = GreeterClient::discover(consumer.clone());
    let answer = greeter.hello("ann".into()).await.unwrap();
    assert!(answer.contains("ann"), "{answer}");
    let list = Spawned::start(
        dir.path(),
        "rpcctl-list",
        "rpcctl",
        &["--registry", &etcd.registry_url(""), "--json", "list"],
        &[],
    )
    .finish(PATIENCE)
    .await;
    assert!(
        list.status.is_some_and(|s| s.success()),
        "rpcctl list failed: {}",
        list.stderr
    );
    assert!(
        list.stdout.contains("example.Greeter"),
        "rpcctl list: {}",
        list.stdout
    );
    let printed = [from_url.stop().await, from_env.stop().await, list];
    assert_no_secret(&printed, &[APP_PASSWORD]);
    consumer.shutdown().await.unwrap();
}

#[tokio::test]
async fn etcd_wrong_password_is_a_clear_error_naming_the_endpoint() {
    let etcd = SecureEtcd::start(Duration::from_secs(60)).await;
    let registry = connect(&etcd.url_as(APP_USER, WRONG_PASSWORD, "")).await;
    let err = registry.discover(&greeter_key()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&etcd.endpoint()) && message.contains("refused the credentials"),
        "{message}"
    );
    assert!(!message.contains(WRONG_PASSWORD), "{message}");
    assert!(!format!("{err:?}").contains(WRONG_PASSWORD), "{err:?}");

    let dir = temp_dir();
    let url = etcd.url_as(APP_USER, WRONG_PASSWORD, "ttl=2");
    let provider = Spawned::provider(dir.path(), "provider-wrong", &url, &[])
        .finish(PATIENCE)
        .await;
    assert!(
        provider.status.is_some_and(|s| !s.success()),
        "a provider with a wrong password must exit with an error; stderr: {}",
        provider.stderr
    );
    let fatal = provider
        .stderr
        .lines()
        .find(|line| line.starts_with("example-provider: "))
        .unwrap_or_default();
    assert!(
        fatal.contains("refused the credentials") && fatal.contains(&etcd.endpoint()),
        "{fatal:?}"
    );
    let rpcctl = Spawned::start(
        dir.path(),
        "rpcctl-wrong",
        "rpcctl",
        &["--registry", &url, "--json", "list"],
        &[],
    )
    .finish(PATIENCE)
    .await;
    assert!(rpcctl.status.is_some_and(|s| !s.success()));
    assert!(
        rpcctl.stderr.contains("refused the credentials") || rpcctl.stdout.contains("refused"),
        "rpcctl: {} {}",
        rpcctl.stdout,
        rpcctl.stderr
    );
    assert_no_secret(&[provider, rpcctl], &[WRONG_PASSWORD]);
}

/// etcd's simple tokens expire after `--auth-token-ttl` of disuse. A provider's lease is
/// kept alive on a stream and its own nodes are guarded by a watch; after the token expired,
/// a node deleted by hand must still come back (a new request with a fresh token), the lease
/// must still be alive, and a consumer's watch opened before must still report changes.
#[tokio::test]
async fn etcd_lease_keeper_and_watches_survive_auth_token_expiry() {
    const TOKEN_TTL: Duration = Duration::from_secs(1);
    let etcd = SecureEtcd::start(TOKEN_TTL).await;
    let provider = connect(&etcd.registry_url("ttl=2")).await;
    let consumer = connect(&etcd.registry_url("")).await;
    let first = ServiceInstance::new(&greeter_key(), "127.0.0.1", 9301);
    provider.register(&first).await.unwrap();
    let mut watch = consumer.watch(&greeter_key()).await.unwrap();
    watch_until(&mut watch, PATIENCE, "the first instance", |l| l.len() == 1)
        .await
        .unwrap();
    // Authenticated now, idle until its token expired, then it opens a watch.
    let late = connect(&etcd.registry_url("")).await;
    assert_eq!(late.discover(&greeter_key()).await.unwrap().len(), 1);
    // Let every token expire: several TTLs with no unary request.
    tokio::time::sleep(TOKEN_TTL * 4).await;
    let path = format!("/rpc/{}/{}", greeter_key(), first.address());
    assert!(
        etcd.get(&path).await.unwrap().is_some(),
        "the lease lapsed after the token expired"
    );
    let mut late_watch = late.watch(&greeter_key()).await.unwrap();
    watch_until(
        &mut late_watch,
        PATIENCE,
        "a watch opened after expiry",
        |l| l.len() == 1,
    )
    .await
    .unwrap();
    etcd.etcdctl(&["del", &path]).await.unwrap();
    wait_until(PATIENCE, "the deleted node to come back", || async {
        etcd.get(&path).await.ok().flatten().is_some()
    })
    .await
    .unwrap();
    tokio::time::sleep(TOKEN_TTL * 3).await;
    let second = ServiceInstance::new(&greeter_key(), "127.0.0.1", 9302);
    provider.register(&second).await.unwrap();
    watch_until(&mut watch, PATIENCE, "the second instance", |l| {
        l.len() == 2
    })
    .await
    .unwrap();
    tokio::time::sleep(TOKEN_TTL * 3).await;
    assert_eq!(consumer.discover(&greeter_key()).await.unwrap().len(), 2);
    provider.shutdown().await.unwrap();
    consumer.shutdown().await.unwrap();
    late.shutdown().await.unwrap();
}

/// A raw client with no auth, as `zkCli` without `addauth` would be.
async fn anonymous(server: &ZookeeperServer) -> zk::Client {
    server.raw_client().await
}

/// Anyone can read the node and list it; an unauthenticated client can neither delete nor
/// overwrite it.
async fn check_protected(server: &ZookeeperServer, path: &str) {
    let other = anonymous(server).await;
    let (data, _) = other.get_data(path).await.unwrap();
    assert!(String::from_utf8_lossy(&data).contains("9401"));
    let deleted = other.delete(path, None).await;
    assert!(matches!(deleted, Err(zk::Error::NoAuth)), "{deleted:?}");
    let written = other.set_data(path, b"{}", None).await;
    assert!(matches!(written, Err(zk::Error::NoAuth)), "{written:?}");
    let reader = connect(&format!("zookeeper://{}", server.endpoint())).await;
    assert_eq!(reader.discover(&greeter_key()).await.unwrap().len(), 1);
    reader.shutdown().await.unwrap();
}

#[tokio::test]
async fn zookeeper_digest_nodes_are_readable_by_all_but_not_deletable_without_auth() {
    let mut server = ZookeeperServer::start().await;
    let url = format!("zookeeper://app:{ZK_PASSWORD}@{}?ttl=2", server.endpoint());
    let provider = connect(&url).await;
    let instance = ServiceInstance::new(&greeter_key(), "127.0.0.1", 9401);
    provider.register(&instance).await.unwrap();
    let path = format!("/rpc/{}/{}", greeter_key(), instance.address());

    check_protected(&server, &path).await;

    let old_owner = anonymous(&server)
        .await
        .get_data(&path)
        .await
        .unwrap()
        .1
        .ephemeral_owner;
    // Expire the session: the server is away longer than the client keeps a session.
    server.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.start_again().await;
    wait_until(PATIENCE, "the node re-created by a new session", || async {
        let client = anonymous(&server).await;
        let owner = client
            .get_data(&path)
            .await
            .map(|(_, stat)| stat.ephemeral_owner);
        matches!(owner, Ok(owner) if owner != 0 && owner != old_owner)
            && provider
                .discover(&greeter_key())
                .await
                .is_ok_and(|l| l.len() == 1)
    })
    .await
    .unwrap();
    check_protected(&server, &path).await;
    provider.shutdown().await.unwrap();
}

#[tokio::test]
async fn zookeeper_acl_open_lets_anyone_delete() {
    let server = ZookeeperServer::start().await;
    let url = format!(
        "zookeeper://app:{ZK_PASSWORD}@{}?ttl=2&acl=open",
        server.endpoint()
    );
    let provider = connect(&url).await;
    let instance = ServiceInstance::new(&greeter_key(), "127.0.0.1", 9402);
    provider.register(&instance).await.unwrap();
    let path = format!("/rpc/{}/{}", greeter_key(), instance.address());
    anonymous(&server).await.delete(&path, None).await.unwrap();
    provider.shutdown().await.unwrap();
}

/// Every scenario's processes with a password, at trace level: providers (etcd from the URL
/// and from a password file, ZooKeeper digest), a provider refused, rpcctl `--json` lists.
#[tokio::test]
async fn no_password_appears_in_any_output_at_trace_level() {
    let etcd = SecureEtcd::start(Duration::from_secs(1)).await;
    let zookeeper = ZookeeperServer::start().await;
    let dir = temp_dir();
    let password_file = dir.path().join("registry-password");
    std::fs::write(&password_file, format!("{APP_PASSWORD}\n")).unwrap();
    let bare_url = format!("etcd://{}?{}&ttl=2", etcd.endpoint(), etcd.tls_query());
    let zk_url = format!(
        "zookeeper://app:{ZK_PASSWORD}@{}?ttl=2",
        zookeeper.endpoint()
    );
    let providers = [
        Spawned::provider(dir.path(), "etcd-url", &etcd.registry_url("ttl=2"), &[]),
        Spawned::provider(
            dir.path(),
            "etcd-file",
            &bare_url,
            &[
                ("RPC_REGISTRY_USERNAME", APP_USER),
                (
                    "RPC_REGISTRY_PASSWORD_FILE",
                    &password_file.to_string_lossy(),
                ),
            ],
        ),
        Spawned::provider(dir.path(), "zookeeper", &zk_url, &[]),
    ];
    let etcd_reader = connect(&etcd.registry_url("")).await;
    let zk_reader = connect(&zk_url).await;
    wait_until(PATIENCE, "every provider registered", || async {
        etcd_reader
            .discover(&greeter_key())
            .await
            .is_ok_and(|l| l.len() == 2)
            && zk_reader
                .discover(&greeter_key())
                .await
                .is_ok_and(|l| l.len() == 1)
    })
    .await
    .unwrap();
    // Past a token expiry, so refreshes are logged too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut printed = Vec::new();
    for (name, url) in [
        ("rpcctl-etcd", etcd.registry_url("")),
        ("rpcctl-zookeeper", zk_url.clone()),
        ("rpcctl-wrong", etcd.url_as(APP_USER, WRONG_PASSWORD, "")),
    ] {
        let args = ["--registry", url.as_str(), "--json", "list"];
        printed.push(
            Spawned::start(dir.path(), name, "rpcctl", &args, &[])
                .finish(PATIENCE)
                .await,
        );
    }
    // rpcctl reads the password from the environment as a provider does.
    let password_file_text = password_file.to_string_lossy().into_owned();
    let from_env = Spawned::start(
        dir.path(),
        "rpcctl-env",
        "rpcctl",
        &["--registry", &bare_url, "--json", "list"],
        &[
            ("RPC_REGISTRY_USERNAME", APP_USER),
            ("RPC_REGISTRY_PASSWORD_FILE", &password_file_text),
        ],
    )
    .finish(PATIENCE)
    .await;
    assert!(
        from_env.stdout.contains("example.Greeter"),
        "rpcctl with RPC_REGISTRY_PASSWORD_FILE: {} {}",
        from_env.stdout,
        from_env.stderr
    );
    printed.push(from_env);
    // A bad URL is reported with its password as ***.
    let bad_url = etcd.url_as(APP_USER, APP_PASSWORD, "tll=2");
    let bad = Spawned::start(
        dir.path(),
        "rpcctl-bad-url",
        "rpcctl",
        &["--registry", &bad_url, "--json", "list"],
        &[],
    )
    .finish(PATIENCE)
    .await;
    assert!(
        bad.stderr.contains("app:***@") && bad.stderr.contains("tll"),
        "{}",
        bad.stderr
    );
    printed.push(bad);
    let wrong = etcd.url_as(APP_USER, WRONG_PASSWORD, "ttl=2");
    printed.push(
        Spawned::provider(dir.path(), "etcd-wrong", &wrong, &[])
            .finish(PATIENCE)
            .await,
    );
    for provider in providers {
        printed.push(provider.stop().await);
    }
    // RUST_LOG=trace took effect (the ZooKeeper path logs at debug at most).
    for p in printed.iter().filter(|p| !p.name.starts_with("rpcctl")) {
        let verbose = p.stderr.contains(" TRACE ") || p.stderr.contains(" DEBUG ");
        assert!(verbose, "{}: no trace or debug log", p.name);
    }
    assert_no_secret(&printed, &[APP_PASSWORD, ZK_PASSWORD, WRONG_PASSWORD]);
    etcd_reader.shutdown().await.unwrap();
    zk_reader.shutdown().await.unwrap();
}

/// The symptom: against an etcd with auth enabled, a client without a user got
/// "etcdserver: user name is empty" with no hint. Now it is a refusal naming the endpoint and
/// saying how to give a user.
#[tokio::test]
async fn etcd_with_auth_and_no_user_says_how_to_give_one() {
    let etcd = tests::etcd::EtcdServer::start().await;
    for args in [
        vec!["user", "add", "root", "--new-user-password", "r00t-pw"],
        vec!["user", "grant-role", "root", "root"],
        vec!["auth", "enable"],
    ] {
        etcd.etcdctl(&args).await.unwrap();
    }
    let registry = connect(&etcd.registry_url("")).await;
    let err = registry.discover(&greeter_key()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Refused { .. }), "{err:?}");
    let message = err.to_string();
    for needle in [
        etcd.client_url().as_str(),
        "user name is empty",
        "registry.username",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message}");
    }
}
