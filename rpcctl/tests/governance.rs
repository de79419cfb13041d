//! `rpcctl disable|enable|weight|config|route` against a real etcd: every write is validated
//! first (a bad one writes nothing), lands at the contract's path, reads back as written,
//! and `route explain` runs the consumer's router over the registered providers.

use std::time::Duration;

use serde_json::{json, Value};
use tests::etcd::EtcdServer;

const SERVICE: &str = "example.Calculator:1.0.0";
const OVERRIDES: &str = "/rpc/_governance/example.Calculator:1.0.0/overrides";
const ROUTES: &str = "/rpc/_governance/example.Calculator:1.0.0/routes";

/// What one rpcctl run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "rpcctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    fn fails_with(&self, needles: &[&str]) {
        assert_eq!(
            self.code,
            Some(1),
            "expected exit 1; stdout {} stderr {}",
            self.stdout,
            self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "stderr should name {needle:?}: {}",
                self.stderr
            );
        }
    }
}

/// Runs `rpcctl --registry <url> --json <args>` without blocking the runtime.
async fn rpcctl(url: &str, args: &[&str]) -> Run {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_rpcctl"))
            .args(["--registry", url, "--json"])
            .args(args)
            .env_remove("RPC_REGISTRY")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("rpcctl finished within 60 s")
    .expect("rpcctl started");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Writes a provider node by hand, as a tool would (no lease: it stays).
async fn put_provider(etcd: &EtcdServer, port: u16, metadata: Value) {
    let value = json!({
        "service": "example.Calculator", "version": "1.0.0", "host": "127.0.0.1",
        "port": port, "weight": 100, "metadata": metadata, "registered_at_ms": 1,
    });
    let path = format!("/rpc/{SERVICE}/127.0.0.1:{port}");
    etcd.etcdctl(&["put", &path, &value.to_string()])
        .await
        .expect("etcdctl put");
}

async fn stored(etcd: &EtcdServer, path: &str) -> Option<String> {
    etcd.get(path)
        .await
        .expect("etcdctl get")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_enable_and_weight_edit_the_overrides_and_leave_the_node_alone() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    put_provider(&etcd, 9101, json!({})).await;
    let node_before = stored(&etcd, &format!("/rpc/{SERVICE}/127.0.0.1:9101")).await;

    let disabled = rpcctl(&url, &["disable", SERVICE, "127.0.0.1:9101"])
        .await
        .json();
    assert_eq!(
        disabled["overrides"]["addresses"]["127.0.0.1:9101"],
        json!({"disabled": true})
    );
    assert_eq!(
        stored(&etcd, OVERRIDES).await.as_deref(),
        Some(r#"{"version":1,"addresses":{"127.0.0.1:9101":{"disabled":true}}}"#)
    );

    let weighted = rpcctl(&url, &["weight", SERVICE, "127.0.0.1:9101", "300"])
        .await
        .json();
    assert_eq!(
        weighted["overrides"]["addresses"]["127.0.0.1:9101"],
        json!({"disabled": true, "weight": 300})
    );
    let enabled = rpcctl(&url, &["enable", SERVICE, "127.0.0.1:9101"])
        .await
        .json();
    assert_eq!(
        enabled["overrides"]["addresses"]["127.0.0.1:9101"],
        json!({"weight": 300})
    );

    let configured = rpcctl(
        &url,
        &[
            "config",
            "set",
            SERVICE,
            "deadline_ms=500",
            "balancer=least-loaded",
        ],
    )
    .await
    .json();
    assert_eq!(
        configured["overrides"]["service"],
        json!({"deadline_ms": 500, "balancer": "least-loaded"})
    );
    let read_back = rpcctl(&url, &["config", "get", SERVICE]).await.json();
    assert_eq!(
        read_back, configured,
        "what rpcctl wrote, rpcctl reads back"
    );

    // Bad values are refused, naming the field, and nothing changes.
    let before = stored(&etcd, OVERRIDES).await;
    rpcctl(&url, &["config", "set", SERVICE, "balancer=fastest"])
        .await
        .fails_with(&["service.balancer", "fastest", "nothing was written"]);
    rpcctl(&url, &["config", "set", SERVICE, "timeout=3"])
        .await
        .fails_with(&["unknown setting", "timeout"]);
    rpcctl(&url, &["disable", SERVICE, "not-an-address"])
        .await
        .fails_with(&["addresses.not-an-address", "nothing was written"]);
    assert_eq!(stored(&etcd, OVERRIDES).await, before);
    assert_eq!(
        stored(&etcd, &format!("/rpc/{SERVICE}/127.0.0.1:9101")).await,
        node_before,
        "the provider's own node is never touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_set_validates_round_trips_and_explain_uses_the_consumer_router() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("");
    put_provider(&etcd, 9101, json!({"rpc.tag": "gray", "zone": "a"})).await;
    put_provider(&etcd, 9102, json!({"zone": "b"})).await;
    put_provider(&etcd, 9103, json!({"zone": "a"})).await;
    let dir = tempfile::tempdir().expect("temp dir");

    // A bad rule: refused naming the field; nothing is written.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"version":1,"conditions":[{"name":"r","then":{"zone":{"exact":"b"}}}]}"#,
    )
    .unwrap();
    let bad_path = bad.to_string_lossy().into_owned();
    rpcctl(&url, &["route", "set", SERVICE, "--file", &bad_path])
        .await
        .fails_with(&["conditions[0].then.zone", "nothing was written"]);
    assert_eq!(stored(&etcd, ROUTES).await, None);

    // The same bad content written by hand is refused by rpcctl when read.
    let hand_written = std::fs::read_to_string(&bad).unwrap();
    etcd.etcdctl(&["put", ROUTES, &hand_written])
        .await
        .expect("etcdctl put");
    rpcctl(&url, &["route", "get", SERVICE])
        .await
        .fails_with(&["conditions[0].then.zone"]);
    etcd.etcdctl(&["del", ROUTES]).await.expect("etcdctl del");

    let good = dir.path().join("good.json");
    let document = json!({"version": 1, "conditions": [{
        "name": "divide-to-b",
        "when": {"method": {"exact": "divide"}},
        "then": {"metadata.zone": {"exact": "b"}},
    }]});
    std::fs::write(&good, document.to_string()).unwrap();
    let good_path = good.to_string_lossy().into_owned();
    let set = rpcctl(&url, &["route", "set", SERVICE, "--file", &good_path])
        .await
        .json();
    assert_eq!(set["routes"], document);
    assert_eq!(
        rpcctl(&url, &["route", "get", SERVICE]).await.json(),
        set,
        "read back identically"
    );

    let divide = rpcctl(&url, &["route", "explain", SERVICE, "--method", "divide"])
        .await
        .json();
    assert_eq!(divide["reached"], json!(["127.0.0.1:9102"]));
    assert_eq!(divide["condition"]["rule"], "divide-to-b");
    let add = rpcctl(&url, &["route", "explain", SERVICE, "--method", "add"])
        .await
        .json();
    assert_eq!(
        add["reached"],
        json!(["127.0.0.1:9102", "127.0.0.1:9103"]),
        "untagged calls skip tagged providers"
    );
    let gray = rpcctl(
        &url,
        &[
            "route", "explain", SERVICE, "--method", "add", "--tag", "gray",
        ],
    )
    .await
    .json();
    assert_eq!(gray["reached"], json!(["127.0.0.1:9101"]));

    rpcctl(&url, &["disable", SERVICE, "127.0.0.1:9102"])
        .await
        .json();
    let disabled = rpcctl(&url, &["route", "explain", SERVICE, "--method", "divide"])
        .await
        .json();
    assert_eq!(disabled["disabled"], json!(["127.0.0.1:9102"]));
    assert_eq!(
        disabled["reached"],
        json!(["127.0.0.1:9103"]),
        "no zone-b provider left: fall back"
    );

    let deleted = rpcctl(&url, &["route", "delete", SERVICE]).await.json();
    assert_eq!(deleted["routes"], Value::Null);
    assert_eq!(stored(&etcd, ROUTES).await, None);
}
