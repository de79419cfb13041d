//! Reading the layout out of Redis: the keys of one service key, or of the whole root, found
//! with `SCAN ... MATCH` and read with `MGET`.
//!
//! Every instance is one string key `<root>/<service-key>/<host>:<port>` holding the layout
//! JSON, so a listing is a scan of the keys under a prefix. The scan walks the database's
//! whole keyspace (in steps of [`SCAN_COUNT`]); a registry in a database of its own keeps it
//! short.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use rpc_core::registry::{ServiceInstance, ServiceKey};

use super::connection::{Connection, Failure, REGISTRY};
use crate::layout::{self, WarnOnce};

/// Keys asked for per `SCAN` step, and read per `MGET`.
const SCAN_COUNT: usize = 1_000;

/// `s` with the glob characters of `MATCH` and `PSUBSCRIBE` patterns escaped.
pub(crate) fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key matching `pattern`.
pub(crate) async fn scan(connection: &Connection, pattern: &str) -> Result<Vec<String>, Failure> {
    let mut cursor: u64 = 0;
    let mut keys = BTreeSet::new();
    loop {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let (next, batch): (u64, Vec<String>) = connection.query(&command).await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys.into_iter().collect());
        }
        cursor = next;
    }
}

/// The instances of one service key, sorted by address; values that do not parse (or keys
/// that are not strings) are skipped and reported once.
pub(crate) async fn list_instances(
    connection: &Connection,
    root: &str,
    key: &ServiceKey,
    warn: &WarnOnce,
) -> Result<Vec<ServiceInstance>, Failure> {
    let pattern = format!("{}*", escape_glob(&layout::service_prefix(root, key)));
    let keys = scan(connection, &pattern).await?;
    let mut nodes: Vec<(String, Vec<u8>)> = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(SCAN_COUNT) {
        let mut command = redis::cmd("MGET");
        command.arg(chunk);
        let values: Vec<Option<Vec<u8>>> = connection.query(&command).await?;
        for (path, value) in chunk.iter().zip(values) {
            // A key gone (or expired) since the scan, or one that is not a string.
            if let Some(value) = value {
                nodes.push((path.clone(), value));
            }
        }
    }
    let parsed = nodes
        .iter()
        .map(|(path, value)| (path.as_str(), value.as_slice(), revision(value)));
    Ok(layout::parse_nodes(REGISTRY, root, parsed, warn))
}

/// Every service key with at least one key under it.
pub(crate) async fn list_services(
    connection: &Connection,
    root: &str,
) -> Result<Vec<ServiceKey>, Failure> {
    let pattern = format!("{}*", escape_glob(&layout::root_prefix(root)));
    let keys = scan(connection, &pattern).await?;
    let services: BTreeSet<ServiceKey> = keys
        .iter()
        .filter_map(|path| layout::key_of_path(root, path).ok())
        .collect();
    Ok(services.into_iter().collect())
}

/// Redis keeps no revision per key; a hash of the value stands in, so a bad value is
/// reported once, and again when it changes.
fn revision(value: &[u8]) -> i64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("/rpc/a*b?:1/"), "/rpc/a\\*b\\?:1/");
        assert_eq!(escape_glob("[x]\\"), "\\[x\\]\\\\");
        assert_eq!(escape_glob("plain.Name:1.0"), "plain.Name:1.0");
    }
}
