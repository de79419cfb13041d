//! A real Nacos-protocol server for tests: `rnacos` (a Nacos 2.x-compatible server from
//! crates.io, `cargo install rnacos`, see `scripts/install-deps.sh --nacos`) on free loopback
//! ports, with its data in a temp dir, killed (SIGKILL) on drop.
//!
//! Instances can be read and written by hand, as a tool using Nacos's HTTP Open API would,
//! through [`RnacosServer::put_raw`] and [`RnacosServer::get_raw`]: they translate between the
//! layout path/JSON and Nacos instances by the mapping in docs/nacos-registry.md, written
//! here independently of the backend so the tests check the backend against the document.
//! [`NacosBackend`] runs the conformance suite on it.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rpc_core::registry::{Registry, ServiceInstance};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::conformance::{Backend, ROOT};
use crate::net::free_port;
use crate::wait::wait_until;

/// How long a start may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The group the harness and the registries use.
const GROUP: &str = "DEFAULT_GROUP";

/// A standalone rnacos server on `127.0.0.1`: an HTTP port, a gRPC port, a console port.
pub struct RnacosServer {
    dir: tempfile::TempDir,
    http: u16,
    grpc: u16,
    console: u16,
    child: Option<Child>,
}

impl RnacosServer {
    /// Starts a server on free ports and waits until its readiness check answers 200.
    ///
    /// Panics, naming `scripts/install-deps.sh --nacos`, when `rnacos` is missing.
    pub async fn start() -> RnacosServer {
        let dir = tempfile::Builder::new()
            .prefix("rnacos-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for rnacos: {e}"));
        let mut server = RnacosServer {
            dir,
            http: 0,
            grpc: 0,
            console: 0,
            child: None,
        };
        for _ in 0..3 {
            (server.http, server.grpc, server.console) = (free_port(), free_port(), free_port());
            if server.launch().await {
                return server;
            }
            server.stop().await;
        }
        panic!(
            "rnacos did not start within {START_TIMEOUT:?}; see {}",
            server.log_path().display()
        );
    }

    /// `127.0.0.1:<http port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.http)
    }

    /// `nacos://127.0.0.1:<http>?grpc_port=<grpc>` followed by `&<query>` when given.
    pub fn registry_url(&self, query: &str) -> String {
        let url = format!("nacos://{}?grpc_port={}", self.endpoint(), self.grpc);
        if query.is_empty() {
            url
        } else {
            format!("{url}&{query}")
        }
    }

    /// The server's output.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("rnacos.log")
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same ports with the same data dir.
    pub async fn start_again(&mut self) {
        self.stop().await;
        assert!(
            self.launch().await,
            "rnacos did not start again within {START_TIMEOUT:?}; see {}",
            self.log_path().display()
        );
    }

    async fn launch(&mut self) -> bool {
        let log = std::fs::File::create(self.log_path())
            .unwrap_or_else(|e| panic!("cannot create the rnacos log: {e}"));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the rnacos log: {e}"));
        let data = self.dir.path().join("data");
        let mut command = Command::new(rnacos_binary());
        command
            // rnacos reads a `.env` from its working directory: run it where there is none.
            .current_dir(self.dir.path())
            .env("RNACOS_HTTP_PORT", self.http.to_string())
            .env("RNACOS_GRPC_PORT", self.grpc.to_string())
            .env("RNACOS_HTTP_CONSOLE_PORT", self.console.to_string())
            .env("RNACOS_SDK_HOST", "127.0.0.1")
            .env("RNACOS_CONSOLE_HOST", "127.0.0.1")
            .env("RNACOS_DATA_DIR", &data)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; a test process that dies leaves no rnacos.
        unsafe {
            command.as_std_mut().pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run rnacos: {e}. Install it with scripts/install-deps.sh --nacos")
        });
        self.child = Some(child);
        let endpoint = self.endpoint();
        let ready = wait_until(START_TIMEOUT, "rnacos readiness", || {
            let endpoint = endpoint.clone();
            async move {
                matches!(
                    http(&endpoint, "GET", "/nacos/v1/console/health/readiness").await,
                    Ok((200, _))
                )
            }
        })
        .await;
        let running = matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)));
        ready.is_ok() && running
    }

    /// The instances of Nacos service `service` as the HTTP Open API lists them.
    pub async fn list(&self, service: &str) -> Vec<Value> {
        let path = format!(
            "/nacos/v1/ns/instance/list?serviceName={}&groupName={GROUP}&healthyOnly=false",
            encode(service)
        );
        match http(&self.endpoint(), "GET", &path).await {
            Ok((200, body)) => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("hosts").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Writes a layout node by hand: a persistent Nacos instance, by the documented mapping.
    /// A value that is not layout JSON becomes an instance whose `rpc.registered_at_ms` is
    /// that text (so it cannot be read back); a path without `host:port` cannot be a Nacos
    /// instance and is left out.
    pub async fn put_raw(&self, path: &str, value: &[u8]) {
        let Some((service, ip, port)) = split_path(path) else {
            return;
        };
        let (weight, metadata) = match ServiceInstance::from_json(value) {
            Ok(instance) => {
                let mut metadata: BTreeMap<String, String> = instance.metadata.clone();
                metadata.insert("rpc.service".into(), instance.service.clone());
                metadata.insert("rpc.version".into(), instance.version.clone());
                metadata.insert(
                    "rpc.registered_at_ms".into(),
                    instance.registered_at_ms.to_string(),
                );
                (instance.weight, metadata)
            }
            Err(_) => {
                let text = String::from_utf8_lossy(value).into_owned();
                (
                    100,
                    BTreeMap::from([("rpc.registered_at_ms".to_string(), text)]),
                )
            }
        };
        let metadata = serde_json::to_string(&metadata).unwrap_or_default();
        let query = format!(
            "serviceName={}&groupName={GROUP}&ip={ip}&port={port}&weight={weight}&ephemeral=false&enabled=true&healthy=true&metadata={}",
            encode(&service),
            encode(&metadata)
        );
        for method in ["POST", "PUT"] {
            let answer = http(
                &self.endpoint(),
                method,
                &format!("/nacos/v1/ns/instance?{query}"),
            )
            .await;
            assert!(
                matches!(answer, Ok((200, _))),
                "{method} instance {path}: {answer:?}"
            );
        }
    }

    /// Reads a layout node back as JSON, by the documented mapping; `None` when absent.
    pub async fn get_raw(&self, path: &str) -> Option<Vec<u8>> {
        let (service, ip, port) = split_path(path)?;
        let host = self
            .list(&service)
            .await
            .into_iter()
            .find(|h| h["ip"] == ip && h["port"] == port)?;
        let (name, version) = service.rsplit_once(':')?;
        let mut metadata: BTreeMap<String, String> =
            serde_json::from_value(host["metadata"].clone()).unwrap_or_default();
        let service = metadata.remove("rpc.service").unwrap_or(name.to_string());
        let version = metadata
            .remove("rpc.version")
            .unwrap_or(version.to_string());
        let registered_at_ms: u64 = metadata
            .remove("rpc.registered_at_ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        let node = json!({
            "service": service,
            "version": version,
            "host": ip,
            "port": port,
            "weight": host["weight"].as_f64().map(|w| w.round() as u64),
            "metadata": metadata,
            "registered_at_ms": registered_at_ms,
        });
        Some(node.to_string().into_bytes())
    }
}

impl Drop for RnacosServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// `rnacos` from `RNACOS_BIN`, else `~/.cargo/bin/rnacos` if there, else from PATH.
fn rnacos_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("RNACOS_BIN") {
        return bin.into();
    }
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/rnacos"));
    match cargo_bin {
        Ok(path) if path.exists() => path,
        _ => "rnacos".into(),
    }
}

/// `<root>/<service>/<ip>:<port>` as (Nacos service name, ip, port).
fn split_path(path: &str) -> Option<(String, String, u16)> {
    let rest = path.strip_prefix(ROOT)?.strip_prefix('/')?;
    let (service, address) = rest.split_once('/')?;
    let (ip, port) = address.rsplit_once(':')?;
    Some((service.to_string(), ip.to_string(), port.parse().ok()?))
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// One HTTP/1.0 request to `endpoint`: (status, body).
async fn http(endpoint: &str, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {endpoint}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no header end")?;
        let status = std::str::from_utf8(&answer[..split])
            .ok()
            .and_then(|head| head.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .ok_or("no status")?;
        Ok((status, answer[split + 4..].to_vec()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| "no answer within 5 s".to_string())?
}

/// The conformance [`Backend`] on a fresh rnacos.
pub struct NacosBackend {
    /// The server; tests may stop or inspect it.
    pub server: RnacosServer,
    query: String,
}

impl NacosBackend {
    /// Starts a server; registries connect with `query` (e.g. `ttl=3`).
    pub async fn start(query: &str) -> NacosBackend {
        NacosBackend {
            server: RnacosServer::start().await,
            query: query.to_string(),
        }
    }
}

impl Backend for NacosBackend {
    fn name(&self) -> &'static str {
        "nacos"
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
