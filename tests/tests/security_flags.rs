//! The security flags end to end, on the binaries: an `example-provider` started with
//! `--tls-cert --tls-key --auth-tokens-file` registers in a real etcd; `example-consumer` and
//! `rpcctl call` reach it with `--tls-ca` and a token file, and are refused without the token.

use std::process::Command;
use std::time::Duration;

use tests::certs::TestCa;
use tests::etcd::EtcdServer;
use tests::process::{binary, run_consumer, Provider};

#[tokio::test]
async fn provider_consumer_and_rpcctl_speak_tls_and_tokens_from_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let files = ca.server("provider");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "consumer tok-8d1f03\n").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-8d1f03\n").unwrap();
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=5");
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key, tokens_arg) = (path(&files.cert), path(&files.key), path(&tokens));
    let _provider = Provider::spawn_on(
        "127.0.0.1:0",
        &url,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--auth-tokens-file",
            &tokens_arg,
        ],
    )
    .await;
    let (ca_arg, token_arg) = (path(&ca.ca), path(&token_file));
    let transports = tests::consumer::greeter_transports(&url).await;
    assert_eq!(transports, vec![Some("tls".to_string())]);

    let consumer = |with_token: bool| {
        let mut args = vec![
            "--registry".to_string(),
            url.clone(),
            "--tls-ca".to_string(),
            ca_arg.clone(),
            "--calls".to_string(),
            "3".to_string(),
            "--quiet".to_string(),
        ];
        if with_token {
            args.extend(["--auth-token-file".to_string(), token_arg.clone()]);
        }
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_consumer(&args, Duration::from_secs(30))
        })
    };
    let (ok, out) = consumer(true).await.unwrap();
    assert!(ok, "consumer with CA and token failed:\n{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    let (ok, out) = consumer(false).await.unwrap();
    assert!(!ok, "consumer without a token succeeded:\n{out}");

    let rpcctl = |with_token: bool| {
        let mut command = Command::new(binary("rpcctl"));
        command.args([
            "call",
            "example.Greeter:1.0.0",
            "hello",
            "[\"ann\"]",
            "--registry",
            &url,
            "--tls-ca",
            &ca_arg,
        ]);
        if with_token {
            command.args(["--auth-token-file", &token_arg]);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let out = rpcctl(true).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Hello, ann!"), "{stdout}");
    let out = rpcctl(false).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("unauthenticated"), "{stderr}");
    assert!(!stderr.contains("tok-8d1f03"), "{stderr}");
}

/// With `client.tls.platform_roots` a consumer trusts the platform's CA certificates (here the
/// file `SSL_CERT_FILE` names, as on a host whose store holds the company CA), so it needs no
/// `--tls-ca`; without it the same consumer has no trust roots and cannot call.
#[tokio::test]
async fn a_consumer_trusting_the_platform_roots_calls_a_tls_provider_without_a_ca_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "platform-ca");
    let files = ca.server("provider");
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=5");
    let path = |p: &std::path::Path| p.display().to_string();
    let (cert, key) = (path(&files.cert), path(&files.key));
    let _provider = Provider::spawn_on(
        "127.0.0.1:0",
        &url,
        &["--tls-cert", &cert, "--tls-key", &key],
    )
    .await;
    let consumer = |platform_roots: bool| {
        let mut command = tokio::process::Command::new(binary("example-consumer"));
        command
            .args(["--registry", &url, "--calls", "3", "--quiet"])
            .env("SSL_CERT_FILE", &ca.ca)
            .env_remove("SSL_CERT_DIR")
            .env("RPC_TLS_PLATFORM_ROOTS", platform_roots.to_string())
            .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs(30), command.output())
                .await
                .expect("example-consumer finishes within 30 s")
                .expect("example-consumer runs");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
    };
    let (ok, out) = consumer(true).await;
    assert!(ok, "a consumer trusting the platform roots failed:\n{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    let (ok, out) = consumer(false).await;
    assert!(!ok, "a consumer with no trust roots succeeded:\n{out}");
}
