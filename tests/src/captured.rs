//! Workspace binaries run as a user would run them, at `RUST_LOG=trace`, with everything
//! they print captured in files; and the check that no secret appears in it.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rpc_core::registry::{Registry, ServiceKey};

use crate::process::binary;

/// How long a registration, a watch event or a process may take in the security tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The service the example provider serves.
pub fn greeter_key() -> ServiceKey {
    ServiceKey::new("example.Greeter", "1.0.0")
}

/// Connects to a registry, trying again for [`PATIENCE`] (a server that has just said it is
/// ready may still refuse a first session under load), or panics naming why.
pub async fn connect(url: &str) -> std::sync::Arc<dyn Registry> {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        match rpc_registry::connect(url).await {
            Ok(registry) => return registry,
            Err(e) if tokio::time::Instant::now() >= give_up => panic!("connect: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A password no server knows.
pub const WRONG_PASSWORD: &str = "Wr0ng-Pa55-xyzzy";
/// The ZooKeeper digest password of the tests.
pub const ZK_PASSWORD: &str = "zk-Digest-Pa55-S3cret";

/// A spawned workspace binary at `RUST_LOG=trace`, its stdout and stderr in files.
pub struct Spawned {
    name: String,
    child: tokio::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// What a process printed.
pub struct Printed {
    /// Which process.
    pub name: String,
    /// How it exited; `None` when it was killed.
    pub status: Option<ExitStatus>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Spawned {
    /// Starts `bin` (a workspace binary) with `args` and `env`, at `RUST_LOG=trace`.
    pub fn start(
        dir: &Path,
        name: &str,
        bin: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Spawned {
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
    pub fn provider(dir: &Path, name: &str, registry: &str, env: &[(&str, &str)]) -> Spawned {
        let args = ["--listen", "127.0.0.1:0", "--registry", registry];
        Spawned::start(dir, name, "example-provider", &args, env)
    }

    /// Waits for the process to exit (killing it after `timeout`), and reads its output.
    pub async fn finish(mut self, timeout: Duration) -> Printed {
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
    pub async fn stop(mut self) -> Printed {
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
pub fn assert_no_secret(printed: &[Printed], secrets: &[&str]) {
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

/// A temp dir for captured output.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("registry-security-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"))
}
