//! Smoke check of the benchmark binary: every system's server starts in its own process and
//! answers a handful of echo calls. No timing is asserted.

use std::process::Command;

#[test]
fn every_system_answers_echo_calls() {
    // Its own temp directory, to check that the run leaves no TLS keys behind in it.
    let temp = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .arg("--smoke")
        .env("TMPDIR", temp.path())
        .output()
        .expect("rpc-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rpc-bench --smoke failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let mut labels = vec![
        "raw x1",
        "rpc x1",
        "rpc x4",
        "rpc-metrics x1",
        "rpc+meta x1",
        "rpc+tls x1",
        "tonic+tls x1",
        "tarpc x1",
        "tonic x1",
    ];
    // The smoke run also fails unless the multiplexed Volo client used exactly one connection.
    if cfg!(feature = "volo") {
        labels.push("volo x1");
    }
    for label in labels {
        assert!(
            stdout.contains(&format!("smoke: {label} conn: 24/24 echoes ok")),
            "{label} did not answer:\n{stdout}\n{stderr}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(temp.path())
        .expect("read temp dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("rpc-bench-tls-"))
        .collect();
    assert!(
        left.is_empty(),
        "the run left its TLS keys behind: {left:?}"
    );
}

#[test]
fn chart_redraws_from_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("rows.json");
    let png = dir.path().join("chart.png");
    let rows = r#"[
      {"system":"raw","payload":128,"concurrency":1,"connections":1,"qps":1000.0,"p50_us":10.0,"p99_us":20.0,"p999_us":30.0,"cpu_ms_per_1k":1.0},
      {"system":"raw","payload":128,"concurrency":64,"connections":1,"qps":9000.0,"p50_us":50.0,"p99_us":90.0,"p999_us":99.0,"cpu_ms_per_1k":0.5},
      {"system":"rpc","payload":128,"concurrency":1,"connections":1,"qps":800.0,"p50_us":12.0,"p99_us":25.0,"p999_us":40.0,"cpu_ms_per_1k":1.2},
      {"system":"rpc","payload":128,"concurrency":64,"connections":1,"qps":7000.0,"p50_us":60.0,"p99_us":120.0,"p999_us":150.0,"cpu_ms_per_1k":0.7}
    ]"#;
    std::fs::write(&json, rows).expect("write rows");
    let output = Command::new(env!("CARGO_BIN_EXE_rpc-bench"))
        .args(["chart", "--json"])
        .arg(&json)
        .arg("--out")
        .arg(&png)
        .output()
        .expect("rpc-bench runs");
    assert!(
        output.status.success(),
        "rpc-bench chart failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(&png).expect("chart written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}
