//! A log-scraping test: every scenario of tests/registry_security.rs with a password, its
//! processes (providers, rpcctl) at `RUST_LOG=trace`; no password may appear in anything they
//! print (stdout, stderr, `--json`).

use std::time::Duration;

use tests::captured::{
    assert_no_secret, connect, greeter_key, temp_dir, Spawned, PATIENCE, WRONG_PASSWORD,
    ZK_PASSWORD,
};
use tests::etcd_secure::{SecureEtcd, APP_PASSWORD, APP_USER};
use tests::wait::wait_until;
use tests::zookeeper::ZookeeperServer;

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
