//! The `rpcctl` binary against a real etcd (and ZooKeeper and Redis smoke tests) holding real
//! `example-provider` processes: `list`, `show`, `watch`, `call` and `ping`, each in human
//! and `--json` output, and the errors for bad input.
//!
//! Needs `cargo build --workspace --bins` first (scripts/test.sh does it) for the provider
//! binary, and etcd / Java + ZooKeeper (scripts/install-deps.sh).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::etcd::EtcdServer;
use tests::process::Provider;
use tests::redis::RedisServer;
use tests::wait::wait_until;
use tests::zookeeper::ZookeeperServer;

/// The longest any one rpcctl run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a watch line may take to show up.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

const GREETER: &str = "example.Greeter:1.0.0";
const CALCULATOR: &str = "example.Calculator:1.0.0";

/// What one rpcctl run printed.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "rpcctl failed: {self:#?}");
        self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON value.
    fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Asserts exit 1 with `rpcctl: ` and every one of `needles` on stderr.
    fn fails_with(self, needles: &[&str]) {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:#?}");
        assert!(
            self.stderr.starts_with("rpcctl: "),
            "stderr should start with `rpcctl: `: {self:#?}"
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr should name {needle:?}: {self:#?}"
            );
        }
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
    }
}

/// The rpcctl command, with no `RPC_REGISTRY` from the test's environment.
fn rpcctl(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpcctl"));
    command
        .args(args)
        .env_remove("RPC_REGISTRY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs rpcctl to the end (killing it after [`RUN_TIMEOUT`]) and collects its output.
fn run_command(mut command: Command) -> Run {
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start rpcctl: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.unwrap_or_else(|e| panic!("rpcctl: {e}")),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            panic!("rpcctl {command:?} did not finish within {RUN_TIMEOUT:?}");
        }
    };
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `rpcctl <args>`.
fn run(args: &[&str]) -> Run {
    run_command(rpcctl(args))
}

/// Runs `rpcctl --registry <url> <args>`.
fn run_on(url: &str, args: &[&str]) -> Run {
    let mut all = vec!["--registry", url];
    all.extend_from_slice(args);
    run(&all)
}

/// Waits until the registry at `url` lists `count` instances of both example services.
async fn wait_registered(url: &str, count: usize) {
    let registry = rpc_registry::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    for key in [GREETER, CALCULATOR] {
        let key = key.parse().expect("a good key");
        let what = format!("{count} instances of {key} in {url}");
        wait_until(EVENT_TIMEOUT, &what, || {
            let (registry, key) = (&registry, &key);
            async move {
                registry
                    .discover(key)
                    .await
                    .is_ok_and(|list| list.len() == count)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = registry.shutdown().await;
}

/// A real etcd with two example providers registered in it. The providers come first, so
/// they are stopped before etcd.
struct Cluster {
    providers: Vec<Provider>,
    etcd: EtcdServer,
}

impl Cluster {
    async fn start() -> Cluster {
        let etcd = EtcdServer::start().await;
        let url = etcd.registry_url("");
        let providers = vec![Provider::start(&url, &[]), Provider::start(&url, &[])];
        wait_registered(&url, 2).await;
        Cluster { providers, etcd }
    }

    fn url(&self) -> String {
        self.etcd.registry_url("")
    }

    fn addresses(&self) -> Vec<String> {
        self.providers.iter().map(Provider::address).collect()
    }
}

/// The row of a human table whose first cell is `first`, split into cells.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row for {first} in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_services_versions_and_counts() {
    let cluster = Cluster::start().await;
    let url = cluster.url();

    let table = run_on(&url, &["list"]).ok();
    assert!(table.starts_with("SERVICE"), "{table}");
    for service in ["example.Greeter", "example.Calculator"] {
        assert_eq!(row(&table, service), vec![service, "1.0.0", "2"], "{table}");
    }

    let json = run_on(&url, &["list", "--json"]).json();
    let services = json["services"].as_array().expect("services array");
    for (name, key) in [
        ("example.Greeter", GREETER),
        ("example.Calculator", CALCULATOR),
    ] {
        let entry = services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {json}"));
        assert_eq!(entry["version"], "1.0.0", "{json}");
        assert_eq!(entry["key"], key, "{json}");
        assert_eq!(entry["instances"], 2, "{json}");
    }

    // RPC_REGISTRY stands in for --registry.
    let mut command = rpcctl(&["--json", "list"]);
    command.env("RPC_REGISTRY", &url);
    let json = run_command(command).json();
    assert_eq!(json["services"].as_array().map(Vec::len), Some(2), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_instances_with_weight_age_and_lease() {
    let cluster = Cluster::start().await;
    let url = cluster.url();

    let text = run_on(&url, &["show", GREETER]).ok();
    assert!(text.contains("2 instances"), "{text}");
    let header = row(&text, "ADDRESS");
    assert_eq!(
        header,
        vec!["ADDRESS", "RESOLVES", "WEIGHT", "AGE", "LEASE", "TTL", "METADATA"],
        "{text}"
    );
    for address in cluster.addresses() {
        let cells = row(&text, &address);
        assert_eq!(cells[1], "yes", "an IP resolves: {text}");
        let cells = [&cells[..1], &cells[2..]].concat();
        assert_eq!(cells[1], "100", "weight of {address}: {text}");
        assert!(
            cells[2].ends_with('s'),
            "age of {address} should be a duration: {text}"
        );
        let (left, granted) = cells[3]
            .split_once('/')
            .unwrap_or_else(|| panic!("lease TTL of {address} should be left/granted: {text}"));
        assert!(left.ends_with('s') && left.trim_end_matches('s').parse::<u64>().is_ok());
        assert_eq!(granted, "30s", "the default lease TTL: {text}");
        assert_eq!(cells[4], "-", "no metadata: {text}");
    }

    let json = run_on(&url, &["--json", "show", GREETER]).json();
    assert_eq!(json["key"], GREETER, "{json}");
    assert_eq!(json["registry"], "etcd", "{json}");
    let instances = json["instances"].as_array().expect("instances array");
    assert_eq!(instances.len(), 2, "{json}");
    for address in cluster.addresses() {
        let entry = instances
            .iter()
            .find(|i| i["address"] == address.as_str())
            .unwrap_or_else(|| panic!("{address} missing: {json}"));
        assert_eq!(entry["weight"], 100, "{json}");
        assert!(entry["registered_at_ms"].as_u64().is_some_and(|ms| ms > 0));
        assert!(entry["age_ms"].is_u64(), "{json}");
        assert!(entry["metadata"].is_object(), "{json}");
        assert_eq!(entry["resolved"], true, "{json}");
        let lease = &entry["lease"];
        assert_eq!(lease["expired"], false, "{json}");
        assert_eq!(lease["granted_ttl_secs"], 30, "{json}");
        let left = lease["ttl_secs"].as_i64().expect("ttl_secs");
        assert!((0..=30).contains(&left), "{json}");
        assert!(lease["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_marks_an_instance_whose_host_does_not_resolve() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let path = format!("/rpc/{GREETER}/no-such-host.invalid:9401");
    let node = r#"{"service":"example.Greeter","version":"1.0.0","host":"no-such-host.invalid","port":9401}"#;
    etcd.etcdctl(&["put", "--", &path, node])
        .await
        .unwrap_or_else(|e| panic!("etcdctl put: {e}"));
    let text = run_on(&url, &["show", GREETER]).ok();
    let cells = row(&text, "no-such-host.invalid:9401");
    assert!(cells[1].starts_with("unresolved:"), "{text}");
    let json = run_on(&url, &["--json", "show", GREETER]).json();
    let entry = &json["instances"][0];
    assert_eq!(entry["resolved"], false, "{json}");
    assert!(
        entry["unresolved_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no-such-host.invalid")),
        "{json}"
    );
}

/// A running `rpcctl watch` whose stdout lines arrive on a channel.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
    /// Lines read but not yet matched by a [`Watcher::wait_line`].
    backlog: Vec<String>,
}

impl Watcher {
    fn start(args: &[&str]) -> Watcher {
        let mut child = rpcctl(args)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rpcctl watch: {e}"));
        let stdout = child.stdout.take().expect("stdout was piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
            backlog: Vec::new(),
        }
    }

    /// The first line not matched before that satisfies `matches`, from the lines already
    /// read or, for at most [`EVENT_TIMEOUT`], the ones that follow.
    fn wait_line(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.backlog.iter().position(|line| matches(line)) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                    self.backlog.push(line);
                }
                Err(_) => panic!(
                    "no watch line for {what} within {EVENT_TIMEOUT:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for rpcctl to exit by itself; returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "rpcctl watch did not exit after its --count; saw {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_joins_and_leaves_in_human_output() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let mut watcher = Watcher::start(&[
        "--registry",
        &url,
        "watch",
        GREETER,
        "--count",
        "2",
        "--timeout",
        "120",
    ]);
    // The two providers there at the start come first, as `present`.
    for address in cluster.addresses() {
        let line = watcher.wait_line(&format!("{address} present"), |l| {
            l.contains(&address) && l.contains(" present ")
        });
        assert!(
            line.contains(GREETER) && line.contains("weight=100"),
            "{line}"
        );
    }

    // A 2 s lease, so the leave shows even if SIGTERM lands before the provider listens
    // for it (example-provider installs its handler just after printing its address).
    let mut third = Provider::start(&cluster.etcd.registry_url("ttl=2"), &[]);
    let address = third.address();
    let join = watcher.wait_line(&format!("{address} join"), |l| {
        l.contains(&address) && l.contains(" join ")
    });
    assert!(
        join.contains(GREETER) && join.contains("weight=100"),
        "{join}"
    );
    // Each line starts with an RFC 3339 timestamp.
    let stamp = join.split_whitespace().next().unwrap_or_default();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{join}");

    third.terminate(Duration::from_secs(30));
    let leave = watcher.wait_line(&format!("{address} leave"), |l| {
        l.contains(&address) && l.contains(" leave ")
    });
    assert!(leave.contains(GREETER), "{leave}");
    assert_eq!(watcher.wait_exit(), Some(0), "exit after --count 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_joins_and_leaves_as_json() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let mut watcher = Watcher::start(&[
        "--registry",
        &url,
        "watch",
        GREETER,
        "--json",
        "--count",
        "2",
        "--timeout",
        "120",
    ]);
    let parse = |line: &str| -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let is = |line: &str, event: &str, address: &str| {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        value["event"] == event && value["address"] == address
    };
    for address in cluster.addresses() {
        let line = watcher.wait_line(&format!("{address} present"), |l| {
            is(l, "present", &address)
        });
        let value = parse(&line);
        assert_eq!(value["key"], GREETER, "{line}");
        assert_eq!(value["instance"]["weight"], 100, "{line}");
    }

    // A provider with a 2 s lease, killed without a word: etcd drops its node when the
    // lease runs out, and the watch reports the leave.
    let mut third = Provider::start(&cluster.etcd.registry_url("ttl=2"), &[]);
    let address = third.address();
    let join = parse(&watcher.wait_line(&format!("{address} join"), |l| is(l, "join", &address)));
    assert_eq!(join["service"], "example.Greeter", "{join}");
    assert_eq!(join["version"], "1.0.0", "{join}");
    assert_eq!(join["instance"]["port"], third.addr().port(), "{join}");
    assert!(join["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(join["time_ms"].as_u64().is_some_and(|ms| ms > 0));

    third.kill();
    let leave =
        parse(&watcher.wait_line(&format!("{address} leave"), |l| is(l, "leave", &address)));
    assert_eq!(leave["key"], GREETER, "{leave}");
    assert_eq!(watcher.wait_exit(), Some(0), "exit after --count 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_a_service_follows_new_keys_and_updates() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let mut watcher = Watcher::start(&[
        "--registry",
        &url,
        "--json",
        "watch",
        "--count",
        "3",
        "--timeout",
        "120",
    ]);
    let is = |line: &str, event: &str, key: &str| {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        value["event"] == event && value["key"] == key
    };
    for key in [GREETER, CALCULATOR] {
        for _ in cluster.addresses() {
            watcher.wait_line(&format!("{key} present"), |l| is(l, "present", key));
        }
    }

    // A key that did not exist at the start, written by hand as etcdctl would: the key
    // poll finds it, and its instance shows as a join; then an update and a leave.
    let key = "hand.Made:2.0.0";
    let path = format!("/rpc/{key}/127.0.0.1:5999");
    let node = |weight: u32| {
        format!(
            r#"{{"service":"hand.Made","version":"2.0.0","host":"127.0.0.1","port":5999,"weight":{weight}}}"#
        )
    };
    let etcdctl = |args: Vec<String>| {
        let etcd = &cluster.etcd;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            etcd.etcdctl(&args)
                .await
                .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"));
        }
    };
    etcdctl(vec!["put".into(), "--".into(), path.clone(), node(3)]).await;
    let join: Value =
        serde_json::from_str(&watcher.wait_line("hand-made join", |l| is(l, "join", key)))
            .expect("JSON");
    assert_eq!(join["instance"]["weight"], 3, "{join}");

    etcdctl(vec!["put".into(), "--".into(), path.clone(), node(9)]).await;
    let update: Value =
        serde_json::from_str(&watcher.wait_line("hand-made update", |l| is(l, "update", key)))
            .expect("JSON");
    assert_eq!(update["previous"]["weight"], 3, "{update}");
    assert_eq!(update["instance"]["weight"], 9, "{update}");
    assert_eq!(update["changes"][0], "weight 3 -> 9", "{update}");

    etcdctl(vec!["del".into(), "--".into(), path]).await;
    watcher.wait_line("hand-made leave", |l| is(l, "leave", key));
    assert_eq!(watcher.wait_exit(), Some(0), "exit after --count 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_goes_through_discovery_with_json() {
    let cluster = Cluster::start().await;
    let url = cluster.url();

    let hello = run_on(&url, &["call", GREETER, "hello", r#"["bob"]"#]).ok();
    assert_eq!(hello.trim(), r#""Hello, bob!""#);
    let hello = run_on(&url, &["--json", "call", GREETER, "hello", r#"["bob"]"#]).json();
    assert_eq!(hello, "Hello, bob!");

    let sum = run_on(&url, &["call", CALCULATOR, "add", "[2,3]"]).ok();
    assert_eq!(sum.trim(), "5");
    let sum = run_on(&url, &["call", CALCULATOR, "add", "[2,3]", "--json"]).json();
    assert_eq!(sum, 5);

    // No arguments: `[]`, or nothing at all.
    let who = run_on(&url, &["--json", "call", GREETER, "whoami", "[]"]).json();
    assert!(
        cluster.addresses().iter().any(|a| who == a.as_str()),
        "{who}"
    );
    let who = run_on(&url, &["--json", "call", GREETER, "whoami"]).json();
    assert!(who.is_string(), "{who}");

    // A method's own Result comes back as its JSON form; people get it pretty-printed.
    let divided = run_on(&url, &["call", CALCULATOR, "divide", "[1,0]"]).ok();
    assert!(
        divided.contains("\"Err\": \"division by zero\""),
        "{divided}"
    );

    // Errors the provider reports name the method or the arguments.
    run_on(&url, &["call", GREETER, "nosuch", "[]"]).fails_with(&["unknown method", "nosuch"]);
    run_on(&url, &["call", GREETER, "hello", "[1]"]).fails_with(&["bad request", "hello"]);
    run_on(
        &url,
        &[
            "call",
            "example.Nope:1.0.0",
            "hello",
            "[]",
            "--deadline",
            "2",
        ],
    )
    .fails_with(&["no provider", "example.Nope:1.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reports_round_trip_times() {
    let provider = Provider::start("none", &[]);
    let address = provider.address();

    let text = run(&["ping", &address, "--count", "2", "--interval", "0.05"]).ok();
    let pongs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pong from"))
        .collect();
    assert_eq!(pongs.len(), 2, "{text}");
    for pong in pongs {
        assert!(pong.contains("time=") && pong.ends_with(" ms"), "{text}");
    }
    assert!(text.contains("2 sent, 2 received, 0% lost"), "{text}");
    assert!(text.contains("rtt min/avg/max"), "{text}");

    let json = run(&["--json", "ping", &address, "-c", "3", "-i", "0.05"]).json();
    assert_eq!(json["sent"], 3, "{json}");
    assert_eq!(json["received"], 3, "{json}");
    let rtts = json["rtt_ms"].as_array().expect("rtt_ms");
    assert_eq!(rtts.len(), 3, "{json}");
    assert!(rtts.iter().all(|t| t.as_f64().is_some_and(|ms| ms >= 0.0)));
    assert!(json["avg_ms"].is_number(), "{json}");

    // Nobody listening: exit 1, naming the address.
    let closed = tests::net::free_port();
    let nobody = format!("127.0.0.1:{closed}");
    run(&["ping", &nobody, "-c", "1"]).fails_with(&["no pong", &nobody]);
}

#[test]
fn bad_input_exits_1_and_says_what_was_wrong() {
    // Nothing needs to listen: input is checked before the registry is reached.
    let unreachable = "etcd://127.0.0.1:1";
    run(&["--registry", "consul://127.0.0.1:8500", "list"]).fails_with(&[
        "bad registry url",
        "consul://",
        "unknown scheme",
    ]);
    run(&["--registry", "etcd://localhost", "list"]).fails_with(&["bad registry url", "no port"]);
    run(&["--registry", "etcd://h:1?tll=3", "list"]).fails_with(&["unknown option", "tll"]);
    run(&["list"]).fails_with(&["no registry", "--registry", "RPC_REGISTRY"]);
    run_on(unreachable, &["show", "Greeter"]).fails_with(&["bad service key", "Greeter"]);
    run_on(unreachable, &["watch", "a/b:1"]).fails_with(&["bad service key"]);
    run_on(unreachable, &["call", "example.Greeter", "hello", "[]"])
        .fails_with(&["bad service key", "example.Greeter"]);
    run_on(unreachable, &["call", GREETER, "hello", "[bob"]).fails_with(&[
        "bad arguments",
        "[bob",
        "not JSON",
        "JSON array",
    ]);
    run_on(
        unreachable,
        &["call", GREETER, "hello", r#"{"name":"bob"}"#],
    )
    .fails_with(&["bad arguments", "object is not an array"]);
    run_on(unreachable, &["call", GREETER, "hello", "bob"])
        .fails_with(&["bad arguments", "not JSON"]);
    run(&["ping", "no-port-here"]).fails_with(&["bad address", "no-port-here"]);
    run(&["ping", "127.0.0.1:1", "--count", "0"]).fails_with(&["--count"]);
    run(&["watch", "--timeout", "soon"]).fails_with(&["--timeout", "seconds"]);
    run(&["frobnicate"]).fails_with(&["frobnicate"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_list_and_show() {
    let zk = ZookeeperServer::start().await;
    let url = zk.registry_url("");
    let _providers = [Provider::start(&url, &[]), Provider::start(&url, &[])];
    wait_registered(&url, 2).await;

    let table = run_on(&url, &["list"]).ok();
    for service in ["example.Greeter", "example.Calculator"] {
        assert_eq!(row(&table, service), vec![service, "1.0.0", "2"], "{table}");
    }
    let json = run_on(&url, &["--json", "show", GREETER]).json();
    assert_eq!(json["registry"], "zookeeper", "{json}");
    let instances = json["instances"].as_array().expect("instances array");
    assert_eq!(instances.len(), 2, "{json}");
    // Leases are etcd's; ZooKeeper has sessions, so no lease field.
    assert!(instances.iter().all(|i| i.get("lease").is_none()), "{json}");
}

/// `list`, `show` and `watch` against a registry at `url` that holds two providers already:
/// a third joins, is killed with SIGKILL, and leaves (by the backend's own expiry).
async fn list_show_and_watch(url: &str, backend: &str) {
    let providers = [Provider::start(url, &[]), Provider::start(url, &[])];
    wait_registered(url, 2).await;

    let table = run_on(url, &["list"]).ok();
    for service in ["example.Greeter", "example.Calculator"] {
        assert_eq!(row(&table, service), vec![service, "1.0.0", "2"], "{table}");
    }
    let json = run_on(url, &["--json", "show", GREETER]).json();
    assert_eq!(json["registry"], backend, "{json}");
    assert_eq!(
        json["instances"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );

    let mut watcher = Watcher::start(&[
        "--registry",
        url,
        "watch",
        GREETER,
        "--count",
        "2",
        "--timeout",
        "120",
    ]);
    for provider in &providers {
        let address = provider.address();
        watcher.wait_line(&format!("{address} present"), |l| {
            l.contains(&address) && l.contains(" present ")
        });
    }
    let mut third = Provider::start(url, &[]);
    let address = third.address();
    watcher.wait_line(&format!("{address} join"), |l| {
        l.contains(&address) && l.contains(" join ")
    });
    third.kill();
    watcher.wait_line(&format!("{address} leave"), |l| {
        l.contains(&address) && l.contains(" leave ")
    });
    assert_eq!(watcher.wait_exit(), Some(0), "exit after --count 2");
}

/// On Redis a killed provider's key expires by its TTL, with nobody deleting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_list_show_and_watch() {
    let redis = RedisServer::start().await;
    list_show_and_watch(&redis.registry_url("ttl=2"), "redis").await;
}

/// On Nacos the server drops a killed provider's instance with its connection. Needs
/// `--features nacos` (and rnacos: `scripts/install-deps.sh --nacos`), and the provider
/// built with it: `cargo build -p example-provider --features nacos`.
#[cfg(feature = "nacos")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacos_list_show_and_watch() {
    let nacos = tests::nacos::RnacosServer::start().await;
    list_show_and_watch(&nacos.registry_url(""), "nacos").await;
}

/// `offline`, `online` and `stats` through a provider process's admin endpoint (`--admin`),
/// which it publishes as `rpc.admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_online_and_stats_through_the_admin_endpoint() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let admin = format!("127.0.0.1:{}", tests::net::free_port());
    let _provider = Provider::start(&url, &["--admin", &admin]);
    wait_registered(&url, 1).await;
    let shown = run_on(&url, &["--json", "show", GREETER]).ok();
    assert!(shown.contains(&admin), "rpc.admin not published: {shown}");

    run_on(&url, &["call", GREETER, "hello", "[\"ops\"]"]).ok();
    let stats = run(&["--json", "stats", &admin]).json();
    let calls = stats["calls"].as_array().expect("calls");
    let hello = calls
        .iter()
        .find(|c| c["side"] == "server" && c["method"] == "hello" && c["status"] == "0")
        .unwrap_or_else(|| panic!("no served hello in {stats}"));
    assert_eq!(hello["calls"], 1.0, "{stats}");
    let table = run(&["stats", &admin]).ok();
    assert!(
        table.contains("SERVICE") && table.contains("hello"),
        "{table}"
    );

    assert!(run(&["offline", &admin]).ok().contains("offline"));
    wait_registered(&url, 0).await;
    assert!(run(&["online", &admin]).ok().contains("serving"));
    wait_registered(&url, 1).await;

    let nobody = format!("127.0.0.1:{}", tests::net::free_port());
    run(&["offline", &nobody]).fails_with(&["admin endpoint", &nobody]);
}
