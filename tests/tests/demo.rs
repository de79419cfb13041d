//! `scripts/demo.sh` runs end to end (real registry, three providers, one stopped and one
//! killed under load) and its summary shows zero failed calls.

use std::path::Path;
use std::process::Command;

use tests::process::binary;

fn run_demo(registry: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = binary("example-provider")
        .parent()
        .expect("binaries live in a folder")
        .to_path_buf();
    let output = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .args(["--no-build", "--duration", "8", "--registry", registry])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("bash runs scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn assert_zero_failures(stdout: &str) {
    let result = stdout
        .lines()
        .find(|l| l.starts_with("result: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    // "result: N calls, 0 failed"
    let words: Vec<&str> = result.split_whitespace().collect();
    let calls: u64 = words[1].parse().expect("a call count");
    assert!(calls > 1000, "only {calls} calls: {result}");
    assert_eq!(words[3], "0", "failed calls in the demo: {result}");
    assert!(stdout.contains("== summary =="), "{stdout}");
    // The summary reads the client's metrics: every call made at least one attempt.
    let attempts: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("attempts"))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no attempts line from the client metrics in:\n{stdout}"));
    assert!(
        attempts >= calls,
        "{attempts} attempts for {calls} calls: the metrics missed calls"
    );
    // The consumer saw both providers leave the registry.
    assert!(
        stdout.matches("left example.Greeter:1.0.0").count() >= 1,
        "{stdout}"
    );
}

#[test]
fn the_etcd_demo_runs_with_zero_failed_calls() {
    assert_zero_failures(&run_demo("etcd"));
}

#[test]
fn the_zookeeper_demo_runs_with_zero_failed_calls() {
    assert_zero_failures(&run_demo("zookeeper"));
}
