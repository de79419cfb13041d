//! An etcd with users and client-certificate TLS, as a production one runs: `https://` with
//! `--client-cert-auth` (certificates from [`TlsFiles`]), `auth enable` with a `root` user
//! and an `app` user whose role may read and write `/rpc/`, and a short `--auth-token-ttl`
//! so tests see tokens expire.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::etcd::{etcdctl_bin, unique, wait_healthy, Member};
use crate::net::free_port;
use crate::registry_tls::TlsFiles;

/// The `root` user's password.
pub const ROOT_PASSWORD: &str = "r00t-Pa55-etcd";
/// The application user the registry connects as.
pub const APP_USER: &str = "app";
/// The application user's password (tests assert it never shows in any output).
pub const APP_PASSWORD: &str = "app-Pa55w0rd-S3cret";

/// A single-member etcd with TLS, client-certificate auth and users; killed on drop.
#[derive(Debug)]
pub struct SecureEtcd {
    member: Member,
    tls: TlsFiles,
    _dir: TempDir,
}

impl SecureEtcd {
    /// Starts etcd with TLS and client-certificate auth, adds `root` and `app` (role `rpc`:
    /// read-write on the `/rpc` prefix), and enables auth. Auth tokens expire after
    /// `token_ttl` of disuse (etcd's simple tokens; `--auth-token-ttl`).
    pub async fn start(token_ttl: Duration) -> SecureEtcd {
        let dir = tempfile::Builder::new()
            .prefix("etcd-secure-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
        // The client certificate's name is no etcd user, so it grants nothing by itself
        // (etcd takes a certificate's CN as the user when no token is sent).
        let tls = TlsFiles::generate("rpc-test-client");
        let (cert, key) = tls.server();
        let mut member = Member::new(dir.path(), "secure", &unique("secure"));
        member.initial_cluster = format!("secure={}", member.peer_url());
        member.scheme = "https";
        member.health_port = free_port();
        member.extra_args = vec![
            "--client-cert-auth".into(),
            format!("--trusted-ca-file={}", tls.ca().display()),
            format!("--cert-file={}", cert.display()),
            format!("--key-file={}", key.display()),
            format!("--auth-token-ttl={}", token_ttl.as_secs().max(1)),
            format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                member.health_port
            ),
        ];
        member
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
        if let Err(e) = wait_healthy(&mut [&mut member]).await {
            panic!("secure etcd is not healthy: {e}");
        }
        let server = SecureEtcd {
            member,
            tls,
            _dir: dir,
        };
        for args in [
            vec!["user", "add", "root", "--new-user-password", ROOT_PASSWORD],
            vec!["user", "grant-role", "root", "root"],
            vec!["role", "add", "rpc"],
            vec![
                "role",
                "grant-permission",
                "rpc",
                "--prefix=true",
                "readwrite",
                "/rpc",
            ],
            vec!["user", "add", APP_USER, "--new-user-password", APP_PASSWORD],
            vec!["user", "grant-role", APP_USER, "rpc"],
            vec!["auth", "enable"],
        ] {
            if let Err(e) = server.run(&args, false).await {
                panic!("cannot set up etcd users: {e}");
            }
        }
        server
    }

    /// `127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.member.client_port)
    }

    /// The TLS query options: the CA and the client certificate and key.
    pub fn tls_query(&self) -> String {
        let (cert, key) = self.tls.client();
        format!(
            "tls_ca={}&tls_cert={}&tls_key={}",
            self.tls.ca().display(),
            cert.display(),
            key.display()
        )
    }

    /// `etcd://app:<password>@127.0.0.1:<port>?<tls options>[&extra]`.
    pub fn registry_url(&self, extra_query: &str) -> String {
        self.url_as(APP_USER, APP_PASSWORD, extra_query)
    }

    /// The registry URL with other credentials.
    pub fn url_as(&self, user: &str, password: &str, extra_query: &str) -> String {
        let mut url = format!(
            "etcd://{user}:{password}@{}?{}",
            self.endpoint(),
            self.tls_query()
        );
        if !extra_query.is_empty() {
            url.push('&');
            url.push_str(extra_query);
        }
        url
    }

    /// The generated certificates.
    pub fn tls(&self) -> &TlsFiles {
        &self.tls
    }

    /// `etcdctl <args>` as root over TLS; returns stdout.
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        self.run(args, true).await
    }

    /// The value at a key, read as root; `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<String>, String> {
        let output = self
            .etcdctl(&["get", "--print-value-only", "--", key])
            .await?;
        Ok((!output.is_empty()).then(|| output.trim_end_matches('\n').to_string()))
    }

    async fn run(&self, args: &[&str], as_root: bool) -> Result<String, String> {
        let bin = etcdctl_bin()?;
        let (cert, key) = self.tls.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut command = tokio::process::Command::new(&bin);
            command
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=https://{}", self.endpoint()))
                .arg(format!("--cacert={}", self.tls.ca().display()))
                .arg(format!("--cert={}", cert.display()))
                .arg(format!("--key={}", key.display()))
                .args(["--command-timeout=5s", "--dial-timeout=2s"]);
            if as_root {
                command.arg(format!("--user=root:{ROOT_PASSWORD}"));
            }
            let output = command
                .args(args)
                .output()
                .await
                .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
            if output.status.success() {
                return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
            }
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            // Right after start the member may still be electing itself.
            if Instant::now() >= deadline || !stderr.contains("leader") {
                return Err(format!(
                    "etcdctl {args:?} failed ({}): {}",
                    output.status,
                    stderr.trim()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where etcd's log is.
    pub fn log(&self) -> PathBuf {
        self._dir.path().join("secure.log")
    }
}

impl Drop for SecureEtcd {
    fn drop(&mut self) {
        self.member.kill();
    }
}
