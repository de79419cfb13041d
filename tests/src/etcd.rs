//! Real etcd servers for tests: one server ([`EtcdServer`]) or a cluster ([`EtcdCluster`]),
//! on free loopback ports, with data and logs in a temp dir, killed with SIGKILL on drop.
//!
//! The binary is `$ETCD_BIN`, else `etcd` on `PATH`; `etcdctl` is `$ETCDCTL_BIN`, else the
//! one next to etcd, else `etcdctl` on `PATH`. `scripts/install-deps.sh` installs both.
//! Children get `PR_SET_PDEATHSIG`, so a test process that dies leaves no etcd behind.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rpc_core::registry::Registry;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::conformance::Backend;
use crate::net::free_port;

/// How long a server or cluster may take to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh starts that fail (e.g. a port taken meanwhile) are retried on new ports.
const START_ATTEMPTS: usize = 3;

/// Where the etcd binary is, or a message naming `scripts/install-deps.sh`.
pub fn etcd_bin() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "ETCD_BIN={} does not exist; unset it, or run scripts/install-deps.sh",
                path.display()
            ))
        };
    }
    find_on_path("etcd").ok_or_else(|| {
        "etcd not found: set ETCD_BIN or put etcd on PATH; scripts/install-deps.sh installs it"
            .to_string()
    })
}

/// Where the etcdctl binary is.
pub fn etcdctl_bin() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ETCDCTL_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(etcd) = etcd_bin() {
        if let Some(sibling) = etcd.parent().map(|dir| dir.join("etcdctl")) {
            if sibling.is_file() {
                return Ok(sibling);
            }
        }
    }
    find_on_path("etcdctl").ok_or_else(|| {
        "etcdctl not found: set ETCDCTL_BIN or put etcdctl on PATH; scripts/install-deps.sh installs it"
            .to_string()
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A unique token per cluster, so members of different test clusters never talk.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One etcd process: its name, ports, data dir and log file.
#[derive(Debug)]
pub(crate) struct Member {
    name: String,
    pub(crate) client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    pub(crate) initial_cluster: String,
    token: String,
    child: Option<Child>,
    /// `http`, or `https` for a member started with TLS flags in `extra_args`.
    pub(crate) scheme: &'static str,
    /// More flags (TLS, auth token TTL).
    pub(crate) extra_args: Vec<String>,
    /// The port `/health` is asked on: the client port, or a plain-HTTP metrics port.
    pub(crate) health_port: u16,
}

impl Member {
    pub(crate) fn new(dir: &Path, name: &str, token: &str) -> Member {
        let client_port = free_port();
        Member {
            name: name.to_string(),
            client_port,
            peer_port: free_port(),
            data_dir: dir.join(format!("{name}.data")),
            log: dir.join(format!("{name}.log")),
            initial_cluster: String::new(),
            token: token.to_string(),
            child: None,
            scheme: "http",
            extra_args: Vec::new(),
            health_port: client_port,
        }
    }

    pub(crate) fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn client_url(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub(crate) fn spawn(&mut self) -> Result<(), String> {
        let bin = etcd_bin()?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let client = format!("{}://127.0.0.1:{}", self.scheme, self.client_port);
        let mut command = Command::new(&bin);
        command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("etcd {} exited with {status}", self.name)),
            _ => None,
        }
    }

    /// The last lines of the log, for failure messages.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(2_000)));
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    async fn healthy(&self) -> bool {
        health(self.health_port).await
    }
}

/// Asks `GET /health` on a client port; true when etcd says it is healthy (it has a leader).
async fn health(port: u16) -> bool {
    let ask = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer);
        Some(answer.contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), ask).await,
        Ok(Some(true))
    )
}

/// Waits until every member answers `/health`, or one exits, or the start timeout passes.
pub(crate) async fn wait_healthy(members: &mut [&mut Member]) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let mut all = true;
        for member in members.iter_mut() {
            if let Some(exit) = member.exited() {
                return Err(format!("{exit}; log:\n{}", member.log_tail()));
            }
            if !member.healthy().await {
                all = false;
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = members
                .iter()
                .map(|m| format!("--- {} ---\n{}", m.name, m.log_tail()))
                .collect();
            return Err(format!(
                "etcd not healthy within {START_TIMEOUT:?}; logs:\n{}",
                logs.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs etcdctl (API v3) against `endpoints`; returns its stdout, or an error with stderr.
async fn run_etcdctl(endpoints: &str, args: &[&str]) -> Result<String, String> {
    let bin = etcdctl_bin()?;
    let output = tokio::process::Command::new(&bin)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(["--command-timeout=5s", "--dial-timeout=2s"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "etcdctl {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Parses `etcdctl lease list`: the lease ids (printed in hex, zero-padded).
fn parse_lease_list(output: &str) -> Result<Vec<i64>, String> {
    output
        .lines()
        .skip_while(|line| !line.starts_with("found"))
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|hex| {
            u64::from_str_radix(hex, 16)
                .map(|id| id as i64)
                .map_err(|e| format!("bad lease id {hex:?} in etcdctl output: {e}"))
        })
        .collect()
}

/// `etcd://<endpoints>[?query]`.
fn etcd_url(endpoints: &[String], query: &str) -> String {
    let mut url = format!("etcd://{}", endpoints.join(","));
    if !query.is_empty() {
        url.push('?');
        url.push_str(query.trim_start_matches('?'));
    }
    url
}

/// A single-member etcd on free loopback ports, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct EtcdServer {
    member: Member,
    dir: TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until `/health` answers. Panics with a message (naming
    /// `scripts/install-deps.sh` if etcd is missing) when it cannot.
    pub async fn start() -> EtcdServer {
        match EtcdServer::try_start().await {
            Ok(server) => server,
            Err(e) => panic!("cannot start etcd: {e}"),
        }
    }

    /// Starts etcd and waits until `/health` answers.
    pub async fn try_start() -> Result<EtcdServer, String> {
        etcd_bin()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("etcd-test-")
                .tempdir()
                .map_err(|e| format!("cannot make a temp dir: {e}"))?;
            let mut member = Member::new(dir.path(), "solo", &unique("solo"));
            member.initial_cluster = format!("solo={}", member.peer_url());
            member.spawn()?;
            match wait_healthy(&mut [&mut member]).await {
                Ok(()) => return Ok(EtcdServer { member, dir }),
                Err(e) => {
                    member.kill();
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// `127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        self.member.client_url()
    }

    /// `etcd://127.0.0.1:<port>`, with `extra_query` (e.g. `ttl=2`) as its query if not empty.
    pub fn registry_url(&self, extra_query: &str) -> String {
        etcd_url(&[self.client_url()], extra_query)
    }

    /// The temp dir holding the data dir and `solo.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills etcd with SIGKILL (as a crash would) and reaps it.
    pub fn stop(&mut self) {
        self.member.kill();
    }

    /// Starts etcd again on the same ports and data dir, and waits until it is healthy.
    pub async fn start_again(&mut self) {
        self.member.kill();
        if let Err(e) = self.member.spawn() {
            panic!("cannot restart etcd: {e}");
        }
        if let Err(e) = wait_healthy(&mut [&mut self.member]).await {
            panic!("restarted etcd is not healthy: {e}");
        }
    }

    /// Deletes the data dir: the next start is a brand-new etcd with no keys and no leases.
    /// Stops etcd first if it runs.
    pub fn wipe_data(&mut self) {
        self.member.kill();
        if self.member.data_dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.member.data_dir) {
                panic!("cannot wipe {}: {e}", self.member.data_dir.display());
            }
        }
    }

    /// Runs `etcdctl <args>` against this server; returns stdout.
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        run_etcdctl(&self.client_url(), args).await
    }

    /// The ids of the leases etcd holds, from `etcdctl lease list`.
    pub async fn leases(&self) -> Result<Vec<i64>, String> {
        parse_lease_list(&self.etcdctl(&["lease", "list"]).await?)
    }

    /// The value at a key, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        etcdctl_get(&self.client_url(), key).await
    }
}

/// `etcdctl get` of one key's value; `None` when absent. (etcdctl prints the key, then the
/// value, each on a line; nothing when the key does not exist.)
async fn etcdctl_get(endpoints: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    let output = run_etcdctl(endpoints, &["get", "--", key]).await?;
    Ok(output.split_once('\n').map(|(_key, value)| {
        value
            .strip_suffix('\n')
            .unwrap_or(value)
            .as_bytes()
            .to_vec()
    }))
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.member.kill();
    }
}

/// A multi-member etcd cluster on loopback, each member killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts `size` members (`m0`, `m1`, ...) and waits until every one is healthy.
    pub async fn start(size: usize) -> EtcdCluster {
        match EtcdCluster::try_start(size).await {
            Ok(cluster) => cluster,
            Err(e) => panic!("cannot start an etcd cluster of {size}: {e}"),
        }
    }

    /// Starts `size` members and waits until every one is healthy.
    pub async fn try_start(size: usize) -> Result<EtcdCluster, String> {
        etcd_bin()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("etcd-cluster-")
                .tempdir()
                .map_err(|e| format!("cannot make a temp dir: {e}"))?;
            let token = unique("cluster");
            let mut members: Vec<Member> = (0..size)
                .map(|i| Member::new(dir.path(), &format!("m{i}"), &token))
                .collect();
            let initial: Vec<String> = members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url()))
                .collect();
            let initial = initial.join(",");
            let mut spawned = Ok(());
            for member in &mut members {
                member.initial_cluster = initial.clone();
                spawned = spawned.and_then(|()| member.spawn());
            }
            let result = match spawned {
                Ok(()) => wait_healthy(&mut members.iter_mut().collect::<Vec<_>>()).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(EtcdCluster { members, _dir: dir }),
                Err(e) => {
                    members.iter_mut().for_each(Member::kill);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// The members' client endpoints (`127.0.0.1:<port>`), in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// `etcd://<all endpoints, member order>[?extra_query]`.
    pub fn registry_url(&self, extra_query: &str) -> String {
        etcd_url(&self.endpoints(), extra_query)
    }

    /// Kills member `index` with SIGKILL.
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }

    /// Starts member `index` again (same ports and data) and waits until it is healthy.
    pub async fn restart(&mut self, index: usize) {
        let member = &mut self.members[index];
        member.kill();
        if let Err(e) = member.spawn() {
            panic!("cannot restart etcd {}: {e}", member.name);
        }
        if let Err(e) = wait_healthy(&mut [member]).await {
            panic!("restarted etcd member is not healthy: {e}");
        }
    }

    /// The index of the member that leads the cluster now, from `etcdctl endpoint status`.
    pub async fn leader(&self) -> Result<usize, String> {
        let statuses = self.statuses().await?;
        let leader = statuses
            .iter()
            .map(|(_, _, leader)| *leader)
            .find(|leader| *leader != 0)
            .ok_or("no member knows a leader")?;
        statuses
            .iter()
            .find(|(_, member_id, _)| *member_id == leader)
            .map(|(index, _, _)| *index)
            .ok_or_else(|| format!("the leader {leader:x} is not a running member"))
    }

    /// Makes member `index` the leader (`etcdctl move-leader`), and waits until it is.
    pub async fn make_leader(&self, index: usize) -> Result<(), String> {
        let current = self.leader().await?;
        if current == index {
            return Ok(());
        }
        let statuses = self.statuses().await?;
        let target = statuses
            .iter()
            .find(|(i, _, _)| *i == index)
            .map(|(_, member_id, _)| *member_id)
            .ok_or_else(|| format!("member {index} is not running"))?;
        let leader_endpoint = self.members[current].client_url();
        run_etcdctl(&leader_endpoint, &["move-leader", &format!("{target:x}")]).await?;
        crate::wait::wait_until(START_TIMEOUT, "the leader to move", || async {
            self.leader().await.ok() == Some(index)
        })
        .await
        .map(drop)
    }

    /// `(member index, member id, leader id)` of every running member.
    async fn statuses(&self) -> Result<Vec<(usize, u64, u64)>, String> {
        let mut out = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            if member.child.is_none() {
                continue;
            }
            let json =
                run_etcdctl(&member.client_url(), &["endpoint", "status", "-w", "json"]).await?;
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| format!("etcdctl endpoint status: {e}: {json}"))?;
            let status = &value[0]["Status"];
            let member_id = status["header"]["member_id"]
                .as_u64()
                .ok_or("no member_id")?;
            let leader = status["leader"].as_u64().unwrap_or(0);
            out.push((index, member_id, leader));
        }
        Ok(out)
    }

    /// Runs `etcdctl <args>` against the members that are running.
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let running: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(Member::client_url)
            .collect();
        run_etcdctl(&running.join(","), args).await
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.members.iter_mut().for_each(Member::kill);
    }
}

/// The conformance [`Backend`] on a fresh single etcd server.
#[derive(Debug)]
pub struct EtcdBackend {
    /// The server; tests may stop or inspect it.
    pub server: EtcdServer,
    query: String,
}

impl EtcdBackend {
    /// Starts a server; registries connect with `query` (e.g. `ttl=5`).
    pub async fn start(query: &str) -> EtcdBackend {
        EtcdBackend {
            server: EtcdServer::start().await,
            query: query.to_string(),
        }
    }
}

impl Backend for EtcdBackend {
    fn heartbeat(&self) -> Duration {
        crate::conformance::heartbeat_of(&self.query)
    }

    fn name(&self) -> &'static str {
        "etcd"
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
        Box::pin(async move {
            let value = String::from_utf8_lossy(value).into_owned();
            if let Err(e) = self.server.etcdctl(&["put", "--", path, &value]).await {
                panic!("etcdctl put {path}: {e}");
            }
        })
    }

    fn get_raw<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            self.server
                .get(path)
                .await
                .unwrap_or_else(|e| panic!("etcdctl get {path}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lease_list() {
        let out = "found 2 leases\n694d8a5e3a0e5c04\n0551a1fcb5667e06\n";
        assert_eq!(
            parse_lease_list(out).unwrap(),
            vec![0x694d8a5e3a0e5c04, 0x551a1fcb5667e06]
        );
        assert!(parse_lease_list("found 0 leases\n").unwrap().is_empty());
    }

    #[test]
    fn builds_urls() {
        let eps = vec!["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()];
        assert_eq!(etcd_url(&eps, ""), "etcd://127.0.0.1:1,127.0.0.1:2");
        assert_eq!(etcd_url(&eps[..1], "ttl=2"), "etcd://127.0.0.1:1?ttl=2");
    }
}
