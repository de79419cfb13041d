//! A real, standalone ZooKeeper for tests: Debian's `zookeeper` package run with Java on a
//! free loopback port, with a temp data dir, killed (SIGKILL) on drop.
//!
//! `tickTime` is 500 ms, so the shortest session timeout is 1 s and session tests take
//! seconds. The server's output goes to `zookeeper.log` in its temp dir. The jar and Java
//! come from Debian's paths, or from `ZOOKEEPER_CLASSPATH` and `JAVA`. The JVM gets
//! `PR_SET_PDEATHSIG`, so a test process that dies leaves no ZooKeeper behind.
//!
//! Nodes can be read and written by hand, as `zkCli` would, through [`ZookeeperServer::put_raw`],
//! [`ZookeeperServer::delete_raw`] and [`ZookeeperServer::get_raw`]. [`ZookeeperBackend`] runs
//! the conformance suite on it.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use rpc_core::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client as zk;

use crate::conformance::Backend;
use crate::net::free_port;
use crate::wait::wait_until;

/// Debian's ZooKeeper server jar, plus a logger binding that keeps it quiet.
const DEBIAN_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar";

/// The ZooKeeper tick in milliseconds: session timeouts are clamped to 2..=20 ticks.
pub const TICK_MS: u64 = 500;

/// How long a start may take before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A standalone ZooKeeper server on `127.0.0.1:<port>`.
pub struct ZookeeperServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// For an ensemble member: its id and the `server.N=` lines of every member.
    member: Option<(u32, String)>,
}

impl ZookeeperServer {
    /// Starts a server on a free port and waits until it serves (`srvr` prints `Mode:`).
    ///
    /// Panics, naming `scripts/install-deps.sh`, when Java or the ZooKeeper jar is missing.
    pub async fn start() -> ZookeeperServer {
        let mut server = ZookeeperServer::unstarted(free_port(), None);
        // A port taken by another process in the meantime shows as a server that never
        // becomes ready: try a few ports.
        for attempt in 0..3 {
            if attempt > 0 {
                server.port = free_port();
            }
            server.write_config();
            if server.launch().await {
                return server;
            }
            server.stop();
        }
        panic!(
            "zookeeper did not start within {START_TIMEOUT:?}; see {}",
            server.log_path().display()
        );
    }

    fn unstarted(port: u16, member: Option<(u32, String)>) -> ZookeeperServer {
        let dir = tempfile::Builder::new()
            .prefix("zookeeper-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temp dir for zookeeper: {e}"));
        ZookeeperServer {
            dir,
            port,
            child: None,
            member,
        }
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `zookeeper://127.0.0.1:<port>` followed by `?<query>` when `query` is not empty, e.g.
    /// `registry_url("ttl=2")`.
    pub fn registry_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("zookeeper://{}", self.endpoint())
        } else {
            format!("zookeeper://{}?{query}", self.endpoint())
        }
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// The data dir (snapshots and transaction logs).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the server with SIGKILL and waits for it to exit. Sessions and nodes stay in the
    /// data dir, as after a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data dir, and waits until it
    /// serves.
    pub async fn start_again(&mut self) {
        self.stop();
        assert!(
            self.launch().await,
            "zookeeper did not start again on port {} within {START_TIMEOUT:?}; see {}",
            self.port,
            self.log_path().display()
        );
    }

    /// Deletes everything in the data dir, as if the server were new. Call it while stopped.
    pub fn wipe_data(&self) {
        let data = self.data_dir();
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot recreate {}: {e}", data.display()));
    }

    /// A fresh client session, like `zkCli` would open: for reading and writing nodes by hand.
    pub async fn raw_client(&self) -> zk::Client {
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(5))
            .connect(&self.endpoint())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "raw zookeeper client cannot connect to {}: {e}",
                    self.endpoint()
                )
            })
    }

    /// Writes a persistent node by hand (creating its parents), or overwrites its data.
    pub async fn put_raw(&self, path: &str, data: &[u8]) {
        let client = self.raw_client().await;
        let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                client
                    .mkdir(parent, &persistent)
                    .await
                    .unwrap_or_else(|e| panic!("mkdir {parent}: {e}"));
            }
        }
        match client.create(path, data, &persistent).await {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                client
                    .set_data(path, data, None)
                    .await
                    .unwrap_or_else(|e| panic!("set {path}: {e}"));
            }
            Err(e) => panic!("create {path}: {e}"),
        }
    }

    /// Deletes a node by hand; returns whether it existed.
    pub async fn delete_raw(&self, path: &str) -> bool {
        match self.raw_client().await.delete(path, None).await {
            Ok(()) => true,
            Err(zk::Error::NoNode) => false,
            Err(e) => panic!("delete {path}: {e}"),
        }
    }

    /// A node's data and `ephemeralOwner` (0 for a persistent node), if it exists.
    pub async fn get_raw(&self, path: &str) -> Option<(Vec<u8>, i64)> {
        match self.raw_client().await.get_data(path).await {
            Ok((data, stat)) => Some((data, stat.ephemeral_owner)),
            Err(zk::Error::NoNode) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    fn write_config(&self) {
        let data = self.data_dir();
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let mut config = format!(
            "tickTime={TICK_MS}\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=srvr,ruok\n",
            data.display(),
            self.port
        );
        if let Some((id, servers)) = &self.member {
            config.push_str(servers);
            std::fs::write(data.join("myid"), format!("{id}\n"))
                .unwrap_or_else(|e| panic!("cannot write myid: {e}"));
        }
        std::fs::write(self.config_path(), config)
            .unwrap_or_else(|e| panic!("cannot write zoo.cfg: {e}"));
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    /// Spawns the JVM and waits until the server is ready; false if it never got ready.
    async fn launch(&mut self) -> bool {
        self.spawn();
        self.wait_ready().await
    }

    /// Spawns the JVM.
    fn spawn(&mut self) {
        let (java, classpath) = java_and_classpath();
        let log = open_log(&self.log_path());
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share the zookeeper log file: {e}"));
        let mut command = Command::new(&java);
        command
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg("-cp")
            .arg(&classpath)
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child, so that a
        // test process that dies leaves no ZooKeeper behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {java}: {e}. Install Java and ZooKeeper with scripts/install-deps.sh"
            )
        });
        self.child = Some(child);
    }

    /// Waits until the server serves clients; false if it never did, or exited.
    async fn wait_ready(&mut self) -> bool {
        let endpoint = self.endpoint();
        let ready = wait_until(START_TIMEOUT, "zookeeper to serve", || {
            let endpoint = endpoint.clone();
            async move { is_serving(&endpoint).await }
        })
        .await;
        if ready.is_err() || self.exited() {
            return false;
        }
        true
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for ZookeeperServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A three-member ZooKeeper ensemble on loopback ports, for endpoint failover.
pub struct ZookeeperEnsemble {
    /// The members, in `myid` order (1, 2, 3).
    pub members: Vec<ZookeeperServer>,
}

impl ZookeeperEnsemble {
    /// Starts three members and waits until each one serves (a quorum has formed).
    pub async fn start() -> ZookeeperEnsemble {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut servers = String::new();
        for id in 1..=3 {
            servers.push_str(&format!(
                "server.{id}=127.0.0.1:{}:{}\n",
                free_port(),
                free_port()
            ));
        }
        let mut members: Vec<ZookeeperServer> = client_ports
            .iter()
            .zip(1..)
            .map(|(&port, id)| ZookeeperServer::unstarted(port, Some((id, servers.clone()))))
            .collect();
        for member in &mut members {
            member.write_config();
            member.spawn();
        }
        for member in &mut members {
            assert!(
                member.wait_ready().await,
                "zookeeper ensemble member on port {} did not serve within {START_TIMEOUT:?}; see {}",
                member.port,
                member.log_path().display()
            );
        }
        ZookeeperEnsemble { members }
    }

    /// `127.0.0.1:<port>` of every member, comma-separated.
    pub fn endpoints(&self) -> String {
        let endpoints: Vec<String> = self.members.iter().map(ZookeeperServer::endpoint).collect();
        endpoints.join(",")
    }

    /// `zookeeper://<every member>` followed by `?<query>` when `query` is not empty.
    pub fn registry_url(&self, query: &str) -> String {
        if query.is_empty() {
            format!("zookeeper://{}", self.endpoints())
        } else {
            format!("zookeeper://{}?{query}", self.endpoints())
        }
    }

    /// Which members have a client connection open (from `srvr`'s `Connections:` line).
    pub async fn connection_counts(&self) -> Vec<usize> {
        let mut counts = Vec::new();
        for member in &self.members {
            counts.push(connections(&member.endpoint()).await.unwrap_or(0));
        }
        counts
    }
}

/// Java and the server's classpath; panics naming `scripts/install-deps.sh` when missing.
fn java_and_classpath() -> (String, String) {
    static FOUND: OnceLock<(String, String)> = OnceLock::new();
    FOUND.get_or_init(find_java_and_classpath).clone()
}

fn find_java_and_classpath() -> (String, String) {
    let classpath =
        std::env::var("ZOOKEEPER_CLASSPATH").unwrap_or_else(|_| DEBIAN_CLASSPATH.into());
    let jar = classpath.split(':').next().unwrap_or_default();
    assert!(
        Path::new(jar).exists(),
        "ZooKeeper is not installed: {jar} is missing. Run scripts/install-deps.sh \
         (or set ZOOKEEPER_CLASSPATH to the server jar and its slf4j binding)"
    );
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".into());
    let found = Command::new(&java)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "Java is not installed ({java:?} does not run). Run scripts/install-deps.sh (or set JAVA)"
    );
    (java, classpath)
}

fn open_log(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The `srvr` report of a server, if it answers.
async fn srvr(endpoint: &str) -> Option<String> {
    let probe = async {
        let mut stream = TcpStream::connect(endpoint).await.ok()?;
        stream.write_all(b"srvr").await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
}

/// The `Connections:` count `srvr` reports (the `srvr` probe itself included).
async fn connections(endpoint: &str) -> Option<usize> {
    let report = srvr(endpoint).await?;
    report
        .lines()
        .find_map(|line| line.strip_prefix("Connections:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Whether the server answers `srvr` with a `Mode:` line (`ruok` answers before it serves).
async fn is_serving(endpoint: &str) -> bool {
    srvr(endpoint)
        .await
        .is_some_and(|report| report.contains("Mode:"))
}

/// The conformance [`Backend`] on a fresh standalone ZooKeeper.
pub struct ZookeeperBackend {
    /// The server; tests may stop or inspect it.
    pub server: ZookeeperServer,
    query: String,
}

impl ZookeeperBackend {
    /// Starts a server; registries connect with `query` (e.g. `ttl=2`).
    pub async fn start(query: &str) -> ZookeeperBackend {
        ZookeeperBackend {
            server: ZookeeperServer::start().await,
            query: query.to_string(),
        }
    }
}

impl Backend for ZookeeperBackend {
    fn heartbeat(&self) -> Duration {
        crate::conformance::heartbeat_of(&self.query)
    }

    fn name(&self) -> &'static str {
        "zookeeper"
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
        Box::pin(async move { self.server.get_raw(path).await.map(|(data, _)| data) })
    }
}
