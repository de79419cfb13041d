//! What the commands print: aligned tables and lines for people, JSON for scripts, and the
//! small formatters both share (ages, timestamps, metadata).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::error::{CliError, CliResult};

/// Where command output goes: stdout, as text for people or as JSON for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
}

impl Output {
    /// Output in JSON (`--json`) or for people.
    pub fn new(json: bool) -> Output {
        Output { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes `text` and a newline to stdout, flushed at once (watch lines are read live).
    /// A closed stdout ends the command quietly.
    pub fn line(&self, text: &str) -> CliResult {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
                _ => CliError::new(format!("cannot write to stdout: {e}")),
            })
    }

    /// Writes one JSON value on one line.
    pub fn json_line(&self, value: &serde_json::Value) -> CliResult {
        self.line(&value.to_string())
    }

    /// Writes `value` pretty-printed for people, or on one line with `--json`.
    pub fn json_value(&self, value: &serde_json::Value) -> CliResult {
        if self.json {
            self.json_line(value)
        } else {
            let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
            self.line(&pretty)
        }
    }
}

/// A table whose columns are padded to line up; the last column is not padded.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Spaces between columns.
const GAP: usize = 2;

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as lines, without a trailing newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let last = self.headers.len().saturating_sub(1);
        std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(|cells| {
                let mut line = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    line.push_str(cell);
                    if i < last {
                        let pad = widths[i] - width(cell) + GAP;
                        line.push_str(&" ".repeat(pad));
                    }
                }
                line.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A duration as people read it: `850ms`, `42s`, `3m07s`, `2h05m`, `4d03h`.
pub fn age(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        1..=59 => format!("{secs}s"),
        60..=3_599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600..=86_399 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// How long ago `since_ms` (milliseconds since the Unix epoch) was, from `now_ms`; `None`
/// when the time is unknown (0) or in the future.
pub fn age_ms(since_ms: u64, now_ms: u64) -> Option<u64> {
    (since_ms > 0 && since_ms <= now_ms).then(|| now_ms - since_ms)
}

/// A moment as RFC 3339 in UTC with milliseconds: `2026-01-02T03:04:05.678Z`.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Metadata as `key=value` pairs separated by commas, or `-` when there is none.
pub fn metadata(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "-".to_string();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        let mut table = Table::new(&["SERVICE", "VERSION", "N"]);
        table.row(vec!["example.Greeter".into(), "1.0.0".into(), "2".into()]);
        table.row(vec!["s".into(), "10.0.0-beta".into(), "12".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SERVICE          VERSION      N");
        assert_eq!(lines[1], "example.Greeter  1.0.0        2");
        assert_eq!(lines[2], "s                10.0.0-beta  12");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(Duration::from_millis(850)), "850ms");
        assert_eq!(age(Duration::from_secs(42)), "42s");
        assert_eq!(age(Duration::from_secs(187)), "3m07s");
        assert_eq!(age(Duration::from_secs(7_500)), "2h05m");
        assert_eq!(age(Duration::from_secs(4 * 86_400 + 3 * 3_600)), "4d03h");
        assert_eq!(age_ms(0, 10), None);
        assert_eq!(age_ms(20, 10), None);
        assert_eq!(age_ms(4, 10), Some(6));
    }

    #[test]
    fn metadata_and_timestamps() {
        let mut map = BTreeMap::new();
        assert_eq!(metadata(&map), "-");
        map.insert("zone".to_string(), "a".to_string());
        map.insert("az".to_string(), "1".to_string());
        assert_eq!(metadata(&map), "az=1,zone=a");
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_732_000_000_123);
        assert_eq!(timestamp(at), "2024-11-19T07:06:40.123Z");
    }
}
