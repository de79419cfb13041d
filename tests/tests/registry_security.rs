//! Registries with credentials and TLS, against real servers:
//! - etcd with users (`auth enable`) and client-certificate TLS: providers register (password
//!   from the URL or from `RPC_REGISTRY_PASSWORD`), a consumer discovers, watches and calls,
//!   rpcctl lists; a wrong password is a clear error naming the endpoint; the lease keeper
//!   and watches outlive etcd's auth token (a short `--auth-token-ttl`);
//! - ZooKeeper with digest auth: a provider's node is readable by everyone but cannot be
//!   deleted or overwritten by an unauthenticated client (`NoAuth`), also after the session
//!   expired and the node was re-created;
//! - no password in anything the spawned processes print: tests/registry_secrets.rs.

use std::time::Duration;

use example_provider::GreeterClient;
use rpc_core::registry::{RegistryError, ServiceInstance};
use tests::captured::{
    assert_no_secret, connect, greeter_key, temp_dir, Spawned, PATIENCE, WRONG_PASSWORD,
    ZK_PASSWORD,
};
use tests::etcd_secure::{SecureEtcd, APP_PASSWORD, APP_USER};
use tests::wait::{wait_until, watch_until};
use tests::zookeeper::ZookeeperServer;
use zookeeper_client as zk;

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
