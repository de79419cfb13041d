//! Real provider and consumer processes: the `example-provider` and `example-consumer`
//! binaries, started with arguments, killed (SIGKILL) or stopped (SIGTERM) on demand, and
//! killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the workspace's binaries are: beside the test executable's `deps` folder, or in the
/// folder `RPC_BIN_DIR` names.
pub fn binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("RPC_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/<test>-<hash> -> target/debug/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running `example-provider`.
pub struct Provider {
    child: Child,
    addr: SocketAddr,
}

impl Provider {
    /// Starts a provider on a free port registered in `registry` (`none` for direct mode),
    /// with extra arguments, and waits until it prints its address.
    pub fn start(registry: &str, extra: &[&str]) -> Provider {
        Provider::start_on("127.0.0.1:0", registry, extra)
    }

    /// Like [`Provider::start`], listening on `listen`.
    pub fn start_on(listen: &str, registry: &str, extra: &[&str]) -> Provider {
        Provider::start_with_env(listen, registry, extra, &[])
    }

    /// Like [`Provider::start_on`], off the async runtime's threads (starting waits for the
    /// process to print its address), so a runtime carrying load is never blocked.
    pub async fn spawn_on(listen: &str, registry: &str, extra: &[&str]) -> Provider {
        let (listen, registry) = (listen.to_string(), registry.to_string());
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            Provider::start_on(&listen, &registry, &extra)
        })
        .await
        .unwrap_or_else(|e| panic!("starting a provider panicked: {e}"))
    }

    /// Like [`Provider::start_on`], with extra environment variables (`RPC_*` settings).
    pub fn start_with_env(
        listen: &str,
        registry: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Provider {
        let log = std::env::var("PROVIDER_LOG").unwrap_or_else(|_| "warn".into());
        Provider::spawn(listen, registry, extra, env, &log, Stdio::inherit())
    }

    /// Like [`Provider::start`], logging at `filter` (a `RUST_LOG` value), without colours,
    /// into the file `log`.
    pub fn start_logging_to(registry: &str, extra: &[&str], filter: &str, log: &Path) -> Provider {
        let file = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let env = [("NO_COLOR", "1")];
        Provider::spawn(
            "127.0.0.1:0",
            registry,
            extra,
            &env,
            filter,
            Stdio::from(file),
        )
    }

    fn spawn(
        listen: &str,
        registry: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &str,
        stderr: Stdio,
    ) -> Provider {
        let mut child = Command::new(binary("example-provider"))
            .args(["--listen", listen, "--registry", registry])
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example-provider: {e}"));
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("example-provider listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr
                .parse()
                .unwrap_or_else(|e| panic!("bad address {addr:?}: {e}")),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("example-provider did not print its address within 30 s (exit: {status:?})");
            }
        };
        Provider { child, addr }
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, as `whoami` reports it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process dies at once, deregistering nothing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` to the process; does not wait.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// SIGSTOP: the process freezes (its sockets stay open and the kernel still accepts
    /// connections for it), as in a long GC pause. Does not block.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Whether the process is stopped (state `T` in `/proc/<pid>/stat`): SIGSTOP is
    /// delivered asynchronously, so a test waits for this before relying on the freeze.
    pub fn is_frozen(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                // pid (comm) state ...: the state follows the last ')'.
                let (_, rest) = stat.rsplit_once(')')?;
                rest.split_whitespace().next().map(|state| state == "T")
            })
            .unwrap_or(false)
    }

    /// SIGCONT: a frozen process runs again. Does not block.
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit without blocking the async
    /// runtime; returns whether it exited 0.
    pub async fn terminate_async(&mut self, timeout: Duration) -> bool {
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => {
                    self.kill();
                    return false;
                }
            }
        }
    }

    /// SIGTERM, then waits up to `timeout` for a graceful exit; returns whether it exited 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill();
                    return false;
                }
            }
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // A frozen process must run again to die of SIGKILL promptly and be reaped.
        self.thaw();
        self.kill();
    }
}

/// Runs `example-consumer` to completion and returns (exit success, stdout).
pub fn run_consumer(args: &[&str], timeout: Duration) -> (bool, String) {
    let mut child = Command::new(binary("example-consumer"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example-consumer: {e}"));
    let stdout = child.stdout.take().expect("stdout was piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    });
    let deadline = Instant::now() + timeout;
    let success = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("example-consumer did not finish within {timeout:?}");
            }
        }
    };
    (success, reader.join().unwrap_or_default())
}
