//! Results: one [`Row`] per system per point, a readable table with the framework's ratios to
//! each peer, and the JSON file.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::load::{Measured, Point};
use crate::systems::{BenchError, System};

/// One system at one point; serialized exactly as the `--json` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `rpc`, `raw`, `tarpc`, `tonic` or `volo` (or an opt-in variant of `rpc`).
    pub system: String,
    /// Payload bytes.
    pub payload: usize,
    /// Closed-loop callers.
    pub concurrency: usize,
    /// Client connections.
    pub connections: usize,
    /// Completed calls per second.
    pub qps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Client plus server CPU milliseconds per 1,000 calls.
    pub cpu_ms_per_1k: f64,
    /// Heap allocations of the client process per call (0 in files from before it was
    /// measured).
    #[serde(default)]
    pub client_allocs_per_call: f64,
    /// Heap allocations of the server process per call (0 in files from before it was
    /// measured).
    #[serde(default)]
    pub server_allocs_per_call: f64,
}

impl Row {
    /// The row for `system` at `point`.
    pub fn new(system: System, connections: usize, point: &Point, measured: &Measured) -> Row {
        Row {
            system: system.name().to_string(),
            payload: point.payload,
            concurrency: point.concurrency,
            connections,
            qps: round(measured.qps(), 1),
            p50_us: round(measured.quantile_us(0.50), 1),
            p99_us: round(measured.quantile_us(0.99), 1),
            p999_us: round(measured.quantile_us(0.999), 1),
            cpu_ms_per_1k: round(measured.cpu_ms_per_1k(), 3),
            client_allocs_per_call: round(measured.allocs_per_call_client(), 2),
            server_allocs_per_call: round(measured.allocs_per_call_server(), 2),
        }
    }

    /// `rpc x4` style label.
    pub fn label(&self) -> String {
        format!("{} x{}", self.system, self.connections)
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Writes the rows as a JSON array.
pub fn write_json(rows: &[Row], path: &Path) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(rows)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// Reads rows written by [`write_json`].
pub fn read_json(path: &Path) -> Result<Vec<Row>, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The peer of an `rpc` row: the same payload and concurrency over one connection.
fn peer<'a>(rows: &'a [Row], of: &Row, system: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.system == system
            && r.payload == of.payload
            && r.concurrency == of.concurrency
            && r.connections == 1
    })
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_string()
    }
}

/// The results table, then the framework's ratios to each peer.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>5}  {:<16} {:>10} {:>9} {:>9} {:>10} {:>11} {:>15}",
        "payload",
        "conc",
        "system",
        "qps",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "cpu ms/1k",
        "allocs/call c+s"
    );
    let mut last = None;
    for row in rows_in_order(rows) {
        let group = (row.payload, row.concurrency);
        if last.is_some() && last != Some(group) {
            out.push('\n');
        }
        last = Some(group);
        let _ = writeln!(
            out,
            "{:>7} {:>5}  {:<16} {:>10.0} {:>9.1} {:>9.1} {:>10.1} {:>11.3} {:>15}",
            size(row.payload),
            row.concurrency,
            row.label(),
            row.qps,
            row.p50_us,
            row.p99_us,
            row.p999_us,
            row.cpu_ms_per_1k,
            format!(
                "{:.2}+{:.2}",
                row.client_allocs_per_call, row.server_allocs_per_call
            )
        );
    }
    let rpc_rows: Vec<&Row> = rows_in_order(rows)
        .into_iter()
        .filter(|r| r.system == "rpc")
        .collect();
    if rpc_rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nrpc / peer (same payload and concurrency; peers over 1 connection). \
         qps: higher is better for rpc; p99 and cpu: lower is better for rpc."
    );
    let _ = writeln!(
        out,
        "{:>7} {:>5}  {:<7}  {:>26}  {:>26}  {:>26}",
        "payload",
        "conc",
        "rpc",
        "qps raw/tarpc/tonic/volo",
        "p99 raw/tarpc/tonic/volo",
        "cpu raw/tarpc/tonic/volo"
    );
    for row in rpc_rows {
        let peers: Vec<Option<&Row>> = ["raw", "tarpc", "tonic", "volo"]
            .iter()
            .map(|s| peer(rows, row, s))
            .collect();
        let three = |f: &dyn Fn(&Row) -> f64| {
            peers
                .iter()
                .map(|p| p.map_or("-".to_string(), |p| ratio(f(row), f(p))))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "{:>7} {:>5}  {:<7}  {:>26}  {:>26}  {:>26}",
            size(row.payload),
            row.concurrency,
            row.label(),
            three(&|r| r.qps),
            three(&|r| r.p99_us),
            three(&|r| r.cpu_ms_per_1k),
        );
    }
    out
}

/// Rows sorted by payload, concurrency, then system and connections.
fn rows_in_order(rows: &[Row]) -> Vec<&Row> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (a.payload, a.concurrency, &a.system, a.connections).cmp(&(
            b.payload,
            b.concurrency,
            &b.system,
            b.connections,
        ))
    });
    sorted
}

/// `128 B`, `1 KiB`, `16 KiB`.
pub fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, connections: usize, qps: f64) -> Row {
        Row {
            system: system.into(),
            payload: 128,
            concurrency: 64,
            connections,
            qps,
            p50_us: 10.0,
            p99_us: 20.0,
            p999_us: 30.0,
            cpu_ms_per_1k: 1.0,
            client_allocs_per_call: 7.0,
            server_allocs_per_call: 5.0,
        }
    }

    #[test]
    fn json_rows_have_exactly_the_documented_fields() {
        let value = serde_json::to_value(row("rpc", 1, 1.0)).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "client_allocs_per_call",
                "concurrency",
                "connections",
                "cpu_ms_per_1k",
                "p50_us",
                "p999_us",
                "p99_us",
                "payload",
                "qps",
                "server_allocs_per_call",
                "system"
            ]
        );
    }

    #[test]
    fn table_shows_ratios_against_one_connection_peers() {
        let rows = vec![
            row("raw", 1, 100.0),
            row("rpc", 1, 50.0),
            row("rpc", 4, 80.0),
            row("tarpc", 1, 25.0),
            row("volo", 1, 40.0),
        ];
        let text = table(&rows);
        assert!(text.contains("0.50 / 2.00 / - / 1.25"), "{text}");
        assert!(text.contains("0.80 / 3.20 / - / 2.00"), "{text}");
        assert!(text.contains("7.00+5.00"), "{text}");
    }

    #[test]
    fn rows_from_before_allocation_counts_still_read() {
        let old = r#"{"system":"raw","payload":128,"concurrency":1,"connections":1,"qps":1.0,
            "p50_us":1.0,"p99_us":2.0,"p999_us":3.0,"cpu_ms_per_1k":1.0}"#;
        let row: Row = serde_json::from_str(old).unwrap();
        assert_eq!(row.client_allocs_per_call, 0.0);
        assert_eq!(row.server_allocs_per_call, 0.0);
    }
}
