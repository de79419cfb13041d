//! Real etcd, ZooKeeper and Redis servers for `rpc-bench registry`: each on free loopback ports with
//! its data in a temp dir, killed with SIGKILL when dropped (and when this process dies).
//! A small copy of the start logic of the `tests` crate's harness: etcd from `$ETCD_BIN` or
//! `PATH`; ZooKeeper from Debian's jar (or `$ZOOKEEPER_CLASSPATH`) run with `java` (or
//! `$JAVA`); Redis from `redis-server` on `PATH`, without persistence. `scripts/install-deps.sh`
//! installs all of them.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::child::die_with_parent;
use crate::systems::BenchError;

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(40);
/// Debian's ZooKeeper jar and a logger binding that keeps it quiet.
const DEBIAN_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar";

/// Which registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// etcd v3.
    Etcd,
    /// Standalone ZooKeeper.
    Zookeeper,
    /// One Redis server.
    Redis,
    /// rnacos, a Nacos 2.x-compatible server (needs rpc-bench built with `--features nacos`).
    Nacos,
}

impl Backend {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Etcd => "etcd",
            Backend::Zookeeper => "zookeeper",
            Backend::Redis => "redis",
            Backend::Nacos => "nacos",
        }
    }
}

/// A running registry server.
pub struct RegistryServer {
    backend: Backend,
    port: u16,
    /// rnacos's gRPC port (0 for the others).
    grpc_port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl RegistryServer {
    /// Starts `backend` on a free port and waits until it serves.
    pub async fn start(backend: Backend) -> Result<RegistryServer, BenchError> {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("rpc-bench-{}-", backend.name()))
                .tempdir()?;
            let port = free_port()?;
            let grpc_port = if backend == Backend::Nacos {
                free_port()?
            } else {
                0
            };
            let child = match backend {
                Backend::Etcd => spawn_etcd(dir.path(), port)?,
                Backend::Zookeeper => spawn_zookeeper(dir.path(), port)?,
                Backend::Redis => spawn_redis(dir.path(), port)?,
                Backend::Nacos => spawn_rnacos(dir.path(), port, grpc_port)?,
            };
            let mut server = RegistryServer {
                backend,
                port,
                grpc_port,
                child,
                dir,
            };
            if server.wait_ready().await {
                return Ok(server);
            }
            last = server.log_tail();
        }
        Err(format!("{} did not start; last log lines:\n{last}", backend.name()).into())
    }

    /// The registry URL for `rpc_registry::connect`, with `query` options (e.g. `ttl=2`).
    pub fn url(&self, query: &str) -> String {
        let scheme = self.backend.name();
        if self.backend == Backend::Nacos {
            let url = format!(
                "nacos://127.0.0.1:{}?grpc_port={}",
                self.port, self.grpc_port
            );
            return if query.is_empty() {
                url
            } else {
                format!("{url}&{query}")
            };
        }
        if query.is_empty() {
            format!("{scheme}://127.0.0.1:{}", self.port)
        } else {
            format!("{scheme}://127.0.0.1:{}?{query}", self.port)
        }
    }

    /// Requests the server has received so far, by kind: etcd's
    /// `grpc_server_msg_received_total` per gRPC method (every unary request and every
    /// message on a stream, keep-alives included) from `/metrics`; ZooKeeper's
    /// `zk_packets_received` (pings included) from `mntr`; Redis's `total_commands_processed`
    /// (the bench's own INFO included) from `INFO stats`. Nacos: none (an empty map).
    pub async fn requests_received(&self) -> Result<BTreeMap<String, u64>, BenchError> {
        let (request, what): (&[u8], &str) = match self.backend {
            Backend::Etcd => (b"GET /metrics HTTP/1.0\r\n\r\n", "/metrics"),
            Backend::Zookeeper => (b"mntr", "mntr"),
            Backend::Redis => (b"INFO stats\r\nQUIT\r\n", "INFO stats"),
            // rnacos publishes no request counter this bench knows how to read.
            Backend::Nacos => return Ok(BTreeMap::new()),
        };
        let text = ask(self.port, request)
            .await
            .ok_or_else(|| format!("{}: no answer to {what}", self.backend.name()))?;
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            match self.backend {
                Backend::Etcd => {
                    let Some(rest) = line.strip_prefix("grpc_server_msg_received_total{") else {
                        continue;
                    };
                    let method = rest
                        .split("grpc_method=\"")
                        .nth(1)
                        .and_then(|m| m.split('"').next())
                        .unwrap_or("?");
                    let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
                    *counts.entry(method.to_string()).or_insert(0) += value.unwrap_or(0.0) as u64;
                }
                Backend::Zookeeper => {
                    if let Some(value) = line.strip_prefix("zk_packets_received") {
                        let value = value.trim().parse::<u64>().unwrap_or(0);
                        counts.insert("packets".to_string(), value);
                    }
                }
                Backend::Redis => {
                    if let Some(value) = line.strip_prefix("total_commands_processed:") {
                        let value = value.trim().parse::<u64>().unwrap_or(0);
                        counts.insert("commands".to_string(), value);
                    }
                }
                Backend::Nacos => {}
            }
        }
        if counts.is_empty() {
            return Err(format!("{}: {what} had no request counters", self.backend.name()).into());
        }
        Ok(counts)
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = match self.backend {
                Backend::Etcd => {
                    probe(
                        self.port,
                        b"GET /health HTTP/1.0\r\n\r\n",
                        "\"health\":\"true\"",
                    )
                    .await
                }
                Backend::Zookeeper => probe(self.port, b"srvr", "Mode:").await,
                Backend::Redis => probe(self.port, b"PING\r\nQUIT\r\n", "+PONG").await,
                Backend::Nacos => {
                    let ask = b"GET /nacos/v1/console/health/readiness HTTP/1.0\r\n\r\n";
                    probe(self.port, ask, " 200 ").await
                }
            };
            if ready {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(2_000);
        text.get(start..).unwrap_or_default().to_string()
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` to the port and checks the answer contains `expect`.
async fn probe(port: u16, request: &[u8], expect: &str) -> bool {
    ask(port, request)
        .await
        .is_some_and(|answer| answer.contains(expect))
}

/// Sends `request` to the port and reads the answer until the server closes (2 s at most).
async fn ask(port: u16, request: &[u8]) -> Option<String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(request).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log_file(dir: &Path) -> Result<(Stdio, Stdio), BenchError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let err = log.try_clone()?;
    Ok((Stdio::from(log), Stdio::from(err)))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn spawn_etcd(dir: &Path, client_port: u16) -> Result<Child, BenchError> {
    let bin = match std::env::var_os("ETCD_BIN") {
        Some(path) => PathBuf::from(path),
        None => find_on_path("etcd")
            .ok_or("etcd not found: put it on PATH or set ETCD_BIN (scripts/install-deps.sh)")?,
    };
    let peer_port = free_port()?;
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let (out, err) = log_file(dir)?;
    let mut command = Command::new(&bin);
    command
        .args(["--name", "bench"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .args(["--initial-cluster-state", "new"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut command);
    Ok(command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?)
}

fn spawn_zookeeper(dir: &Path, port: u16) -> Result<Child, BenchError> {
    let classpath =
        std::env::var("ZOOKEEPER_CLASSPATH").unwrap_or_else(|_| DEBIAN_CLASSPATH.to_string());
    let jar = classpath.split(':').next().unwrap_or_default();
    if !Path::new(jar).exists() {
        return Err(format!(
            "ZooKeeper is not installed ({jar} is missing): run scripts/install-deps.sh"
        )
        .into());
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let config = dir.join("zoo.cfg");
    std::fs::write(
        &config,
        format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n\
             4lw.commands.whitelist=srvr,ruok,mntr\n",
            data.display()
        ),
    )?;
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".to_string());
    let (out, err) = log_file(dir)?;
    let mut command = Command::new(&java);
    command
        .args(["-Xmx1g", "-XX:+UseSerialGC"])
        .arg("-cp")
        .arg(&classpath)
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut command);
    Ok(command
        .spawn()
        .map_err(|e| format!("cannot run {java}: {e} (scripts/install-deps.sh installs Java)"))?)
}

fn spawn_redis(dir: &Path, port: u16) -> Result<Child, BenchError> {
    let bin = find_on_path("redis-server")
        .ok_or("redis-server not found: put it on PATH (scripts/install-deps.sh)")?;
    let (out, err) = log_file(dir)?;
    let mut command = Command::new(&bin);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut command);
    Ok(command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?)
}

/// rnacos from `$RNACOS_BIN`, `PATH` or `~/.cargo/bin` (`scripts/install-deps.sh --nacos`),
/// run in `dir` (it reads a `.env` from its working directory; the temp dir has none).
fn spawn_rnacos(dir: &Path, http_port: u16, grpc_port: u16) -> Result<Child, BenchError> {
    let cargo_bin =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/rnacos"));
    let bin = std::env::var_os("RNACOS_BIN")
        .map(PathBuf::from)
        .or_else(|| find_on_path("rnacos"))
        .or(cargo_bin.filter(|path| path.is_file()))
        .ok_or("rnacos not found: run scripts/install-deps.sh --nacos or set RNACOS_BIN")?;
    let console_port = free_port()?;
    let (out, err) = log_file(dir)?;
    let mut command = Command::new(&bin);
    command
        .current_dir(dir)
        .env("RNACOS_HTTP_PORT", http_port.to_string())
        .env("RNACOS_GRPC_PORT", grpc_port.to_string())
        .env("RNACOS_HTTP_CONSOLE_PORT", console_port.to_string())
        .env("RNACOS_SDK_HOST", "127.0.0.1")
        .env("RNACOS_CONSOLE_HOST", "127.0.0.1")
        .env("RNACOS_DATA_DIR", dir.join("data"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    die_with_parent(&mut command);
    Ok(command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?)
}
