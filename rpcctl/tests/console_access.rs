//! `rpcctl console` without a browser: who may use it (loopback by default, a token
//! otherwise, never printed), and its bounds (request bodies, JSON only, open live pages).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tests::admin::raw_request;
use tests::console::Console;
use tests::etcd::EtcdServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

const TOKEN: &str = "s3cret-console-token";
const ROUTES: &str = "/rpc/_governance/example.Calculator:1.0.0/routes";
const OVERRIDES: &str = "/rpc/_governance/example.Calculator:1.0.0/overrides";
/// The console's bound on open live pages.
const LIVE_PAGES: usize = 32;

fn rpcctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rpcctl"));
    command
        .env_remove("RPC_REGISTRY")
        .env_remove("RPC_CONSOLE_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Starts the console on a free loopback port; the console, its address and the line it
/// printed at start.
async fn console(url: &str, token: Option<&str>) -> (Console, SocketAddr, String) {
    let console = Console::start(Path::new(env!("CARGO_BIN_EXE_rpcctl")), url, token).await;
    let (addr, started) = (console.addr, console.started.clone());
    (console, addr, started)
}

/// Sends a whole request and reads only the status line (streams never end).
async fn status_of(addr: SocketAddr, request: &str) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(read > 0, "closed without an answer");
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head).to_string();
    let code = line.split(' ').nth(1).and_then(|c| c.parse().ok());
    (
        code.unwrap_or_else(|| panic!("bad status line {line:?}")),
        stream,
    )
}

#[tokio::test]
async fn off_loopback_without_a_token_the_console_refuses_to_start() {
    // Refused before the registry (none listens there) is even tried.
    let run = rpcctl()
        .args([
            "--registry",
            "etcd://127.0.0.1:1",
            "console",
            "--listen",
            "0.0.0.0:0",
        ])
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("refused within 10 s, before connecting to the registry")
        .expect("rpcctl ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("--console-token"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_api_request_must_carry_it_and_it_is_never_printed() {
    let etcd = EtcdServer::start().await;
    let (child, addr, line) = console(&etcd.registry_url(""), Some(TOKEN)).await;
    assert!(
        line.contains("token"),
        "the start line says a token is needed: {line}"
    );
    assert!(!line.contains(TOKEN), "the token was printed: {line}");
    let get = |extra: String| format!("GET /api/services{extra} HTTP/1.1");
    let none = raw_request(addr, &get(String::new()), b"").await;
    assert_eq!(none.map(|a| a.0), Some(401));
    let wrong = format!("{}\r\nAuthorization: Bearer nope", get(String::new()));
    assert_eq!(raw_request(addr, &wrong, b"").await.map(|a| a.0), Some(401));
    let bearer = format!("{}\r\nAuthorization: Bearer {TOKEN}", get(String::new()));
    assert_eq!(
        raw_request(addr, &bearer, b"").await.map(|a| a.0),
        Some(200)
    );
    let query = get(format!("?token={TOKEN}"));
    assert_eq!(raw_request(addr, &query, b"").await.map(|a| a.0), Some(200));
    // The page itself holds no data; its script asks for the token.
    assert_eq!(
        raw_request(addr, "GET / HTTP/1.1", b"").await.map(|a| a.0),
        Some(200)
    );
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_host_names_are_served() {
    let etcd = EtcdServer::start().await;
    let (_child, addr, line) = console(&etcd.registry_url(""), None).await;
    assert!(line.contains("loopback only"), "{line}");
    let rebound =
        "GET /api/services HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(addr, rebound).await.0, 403);
    let local = "GET /api/services HTTP/1.1\r\nHost: localhost:8080\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(addr, local).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_non_json_writes_are_refused_and_nothing_is_written() {
    let etcd = EtcdServer::start().await;
    let (_child, addr, _) = console(&etcd.registry_url(""), None).await;
    let key = "/api/services/example.Calculator:1.0.0";
    let big = format!(
        "{{\"version\":1,\"conditions\":[{{\"name\":\"{}\",\"then\":{{\"host\":{{\"exact\":\"a\"}}}}}}]}}",
        "x".repeat(100 * 1024)
    );
    let head = format!(
        "PUT {key}/routes HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        big.len()
    );
    let answer = raw_request(addr, &head, big.as_bytes()).await;
    assert_eq!(answer.map(|a| a.0), Some(413));
    // A cross-site form can post text/plain or form data, never JSON without a preflight.
    let body = br#"{"address":"127.0.0.1:9101"}"#;
    let form = format!(
        "POST {key}/disable HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: {}",
        body.len()
    );
    assert_eq!(raw_request(addr, &form, body).await.map(|a| a.0), Some(415));
    for path in [ROUTES, OVERRIDES] {
        assert_eq!(etcd.get(path).await.expect("etcd get"), None, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_pages_past_the_limit_are_refused_with_503() {
    let etcd = EtcdServer::start().await;
    let (_child, addr, _) = console(&etcd.registry_url(""), None).await;
    let request = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut open = Vec::new();
    for _ in 0..LIVE_PAGES {
        let (code, stream) = status_of(addr, &request).await;
        assert_eq!(code, 200);
        open.push(stream);
    }
    let (code, _) = status_of(addr, &request).await;
    assert_eq!(code, 503, "one live page past {LIVE_PAGES}");
    // Everything else is still served.
    let list = format!("GET /api/services HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(addr, &list).await.0, 200);
}

/// `rpcctl --registry url --json args...`, parsed.
async fn rpcctl_json(url: &str, args: &[&str]) -> serde_json::Value {
    let output = rpcctl()
        .args(["--registry", url, "--json"])
        .args(args)
        .output()
        .await
        .expect("rpcctl ran");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("rpcctl --json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_save_and_the_explain_box_agree_with_rpcctl() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    for (port, zone) in [(9101, "a"), (9102, "b")] {
        let node = serde_json::json!({
            "service": "example.Calculator", "version": "1.0.0", "host": "127.0.0.1",
            "port": port, "weight": 100, "metadata": {"zone": zone}, "registered_at_ms": 1,
        });
        let path = format!("/rpc/example.Calculator:1.0.0/127.0.0.1:{port}");
        etcd.etcdctl(&["put", &path, &node.to_string()])
            .await
            .expect("etcdctl put");
    }
    let (_child, addr, _) = console(&url, None).await;
    let key = "/api/services/example.Calculator:1.0.0";
    let rule = r#"{"version":1,"conditions":[{"name":"divide-to-b","when":{"method":{"exact":"divide"}},"then":{"metadata.zone":{"exact":"b"}}}]}"#;
    let head = format!(
        "PUT {key}/routes HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        rule.len()
    );
    let (code, body) = raw_request(addr, &head, rule.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(code, 200, "{body}");
    let stored = etcd
        .get(ROUTES)
        .await
        .expect("etcd get")
        .expect("routes stored");
    assert_eq!(
        String::from_utf8_lossy(&stored),
        rule,
        "stored as rpcctl writes it"
    );
    let got = rpcctl_json(&url, &["route", "get", "example.Calculator:1.0.0"]).await;
    let sent: serde_json::Value = serde_json::from_str(rule).expect("JSON");
    assert_eq!(
        got["routes"], sent,
        "rpcctl reads back what the console saved"
    );

    let (code, body) = raw_request(
        addr,
        &format!("GET {key}/explain?method=divide HTTP/1.1"),
        b"",
    )
    .await
    .expect("an answer");
    assert_eq!(code, 200, "{body}");
    let console: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let args = [
        "route",
        "explain",
        "example.Calculator:1.0.0",
        "--method",
        "divide",
    ];
    let cli = rpcctl_json(&url, &args).await;
    assert_eq!(
        console, cli,
        "the console and rpcctl explain the same call alike"
    );
    assert_eq!(console["reached"], serde_json::json!(["127.0.0.1:9102"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_reports_a_rule_change_as_it_happens() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    let node = serde_json::json!({
        "service": "example.Calculator", "version": "1.0.0", "host": "127.0.0.1",
        "port": 9101, "weight": 100, "metadata": {}, "registered_at_ms": 1,
    });
    etcd.etcdctl(&[
        "put",
        "/rpc/example.Calculator:1.0.0/127.0.0.1:9101",
        &node.to_string(),
    ])
    .await
    .expect("etcdctl put");
    let (_child, addr, _) = console(&url, None).await;
    let request = format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (code, stream) = status_of(addr, &request).await;
    assert_eq!(code, 200);
    let mut lines = tokio::io::BufReader::new(stream).lines();
    let mut next_data = async || loop {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("an event within 10 s")
            .expect("readable")
            .expect("the stream stays open");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str::<serde_json::Value>(data).expect("JSON data");
        }
    };
    let present = next_data().await;
    assert_eq!(present["event"], "present", "{present}");
    // The feed may not have read the documents yet when the first write lands (that write
    // is then its starting point): write new weights until one shows as a change.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut weight = 1;
    let rules = loop {
        let args = ["weight", "example.Calculator:1.0.0", "127.0.0.1:9101"];
        rpcctl_json(&url, &[&args[..], &[&weight.to_string()]].concat()).await;
        if let Ok(event) = tokio::time::timeout(Duration::from_secs(1), next_data()).await {
            break event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rules event in 15 s"
        );
        weight += 1;
    };
    assert_eq!(rules["event"], "rules", "{rules}");
    assert_eq!(rules["key"], "example.Calculator:1.0.0");
    assert!(
        rules["overrides"]["addresses"]["127.0.0.1:9101"]["weight"].is_u64(),
        "{rules}"
    );
}
