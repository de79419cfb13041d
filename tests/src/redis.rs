//! A real Redis for tests: Debian's `redis-server` on a free loopback port, with a temp dir,
//! no persistence (`--save '' --appendonly no`), killed (SIGKILL) on drop.
//!
//! The server starts with keyspace notifications **off**, as Debian ships it: the registry
//! must turn them on itself, and turn them on again after a restart. Keys can be read and
//! written by hand, as `redis-cli` would, through [`RedisServer::put_raw`],
//! [`RedisServer::get_raw`], [`RedisServer::delete_raw`] and [`RedisServer::command`].
//! [`RedisBackend`] runs the conformance suite on it.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rpc_core::registry::Registry;
use tokio::process::{Child, Command};

use crate::conformance::Backend;
use crate::net::free_port;
use crate::wait::wait_until;

/// How long a start may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A standalone Redis server on `127.0.0.1:<port>`.
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// Panics, naming `scripts/install-deps.sh`, when `redis-server` is missing.
    pub async fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redis-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for redis: {e}"));
        let mut server = RedisServer {
            dir,
            port: free_port(),
            child: None,
        };
        for attempt in 0..3 {
            if attempt > 0 {
                server.port = free_port();
            }
            if server.launch().await {
                return server;
            }
            server.stop().await;
        }
        panic!(
            "redis-server did not start within {START_TIMEOUT:?}; see {}",
            server.log_path().display()
        );
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>` followed by `?<query>` when `query` is not empty.
    pub fn registry_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("redis://{}", self.endpoint())
        } else {
            format!("redis://{}?{query}", self.endpoint())
        }
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Kills the server with SIGKILL and waits for it to exit. Nothing is persisted, so a
    /// restart comes back empty.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port (empty, with its command-line config: the
    /// notification settings a client made are gone) and waits until it answers.
    pub async fn start_again(&mut self) {
        self.stop().await;
        assert!(
            self.launch().await,
            "redis-server did not start again on port {} within {START_TIMEOUT:?}; see {}",
            self.port,
            self.log_path().display()
        );
    }

    /// A plain connection, as `redis-cli` would open.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://{}", self.endpoint()))
            .unwrap_or_else(|e| panic!("bad redis url: {e}"));
        client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "raw redis client cannot connect to {}: {e}",
                    self.endpoint()
                )
            })
    }

    /// Runs one command by hand, e.g. `command(&["FLUSHALL"])`, and returns its reply.
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
            .query_async(&mut self.raw().await)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Writes a key by hand (no expiry), as `redis-cli SET` would.
    pub async fn put_raw(&self, key: &str, value: &[u8]) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async::<()>(&mut self.raw().await)
            .await
            .unwrap_or_else(|e| panic!("SET {key}: {e}"));
    }

    /// A key's value, if it exists.
    pub async fn get_raw(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.raw().await)
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
    }

    /// The key's remaining time to live in milliseconds (`-1` no expiry, `-2` no key).
    pub async fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.raw().await)
            .await
            .unwrap_or_else(|e| panic!("PTTL {key}: {e}"))
    }

    /// Deletes a key by hand; returns whether it existed.
    pub async fn delete_raw(&self, key: &str) -> bool {
        let deleted: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.raw().await)
            .await
            .unwrap_or_else(|e| panic!("DEL {key}: {e}"));
        deleted == 1
    }

    async fn launch(&mut self) -> bool {
        let log = self.log_path();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child, so that a
        // test process that dies leaves no Redis behind.
        unsafe {
            command.as_std_mut().pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server: {e}. Install it with scripts/install-deps.sh")
        });
        self.child = Some(child);
        let endpoint = self.endpoint();
        let ready = wait_until(START_TIMEOUT, "redis to answer PING", || {
            let endpoint = endpoint.clone();
            async move { ping(&endpoint).await }
        })
        .await;
        let running = matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)));
        ready.is_ok() && running
    }
}

/// Whether a server answers `PING` at `endpoint`.
async fn ping(endpoint: &str) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://{endpoint}")) else {
        return false;
    };
    let probe = async {
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(_))
    )
}

/// The conformance [`Backend`] on a fresh Redis.
pub struct RedisBackend {
    /// The server; tests may stop or inspect it.
    pub server: RedisServer,
    query: String,
}

impl RedisBackend {
    /// Starts a server; registries connect with `query` (e.g. `ttl=2`).
    pub async fn start(query: &str) -> RedisBackend {
        RedisBackend {
            server: RedisServer::start().await,
            query: query.to_string(),
        }
    }
}

impl Backend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn connect(&self) -> BoxFuture<'_, Arc<dyn Registry>> {
        Box::pin(async move {
            let url = self.server.registry_url(&self.query);
            rpc_registry::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect {url}: {e}"))
        })
    }

    fn put_raw<'a>(&'a self, path: &'a str, value: &'a [u8]) -> BoxFuture<'a, ()> {
        Box::pin(self.server.put_raw(path, value))
    }

    fn get_raw<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(self.server.get_raw(path))
    }
}
