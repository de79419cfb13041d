//! Keyspace notifications: the watch subscribes to `__keyspace@<db>__:<prefix>*`, which Redis
//! publishes only when `notify-keyspace-events` includes `K` and the event classes. The
//! registry turns on the classes it needs (`K`, `g` for del/expire, `$` for set, `x` for
//! expired, `e` for evicted), keeping whatever was on already; where `CONFIG` is not allowed
//! it says so once and the watch relies on its periodic resync alone.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

use super::connection::{Connection, Failure};
use super::listing::escape_glob;

/// The flags the watch needs.
const NEEDED: &str = "Kg$xe";

/// The server's flags with the needed ones added, or `None` when nothing is missing.
/// `A` stands for `g$lshzxetd`, so with it only `K` can be missing.
fn missing_flags(current: &str) -> Option<String> {
    let has = |flag: char| current.contains(flag) || (flag != 'K' && current.contains('A'));
    if NEEDED.chars().all(has) {
        return None;
    }
    let mut flags = current.to_string();
    flags.extend(NEEDED.chars().filter(|&f| !has(f)));
    Some(flags)
}

/// Turns on the keyspace notifications the watch needs, if they are off. Answers whether
/// they are on.
pub(crate) async fn ensure(connection: &Connection, warned: &AtomicBool) -> Result<bool, Failure> {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("notify-keyspace-events");
    let current: Vec<String> = match connection.query(&get).await {
        Ok(reply) => reply,
        Err(Failure::Rejected(message)) => return Ok(cannot(warned, &message)),
        Err(unreachable) => return Err(unreachable),
    };
    let current = current.get(1).cloned().unwrap_or_default();
    let Some(flags) = missing_flags(&current) else {
        return Ok(true);
    };
    let mut set = redis::cmd("CONFIG");
    set.arg("SET").arg("notify-keyspace-events").arg(&flags);
    match connection.query::<()>(&set).await {
        Ok(()) => Ok(true),
        Err(Failure::Rejected(message)) => Ok(cannot(warned, &message)),
        Err(unreachable) => Err(unreachable),
    }
}

fn cannot(warned: &AtomicBool, message: &str) -> bool {
    if !warned.swap(true, Ordering::Relaxed) {
        warn!(
            registry = "redis",
            error = %message,
            "keyspace notifications are off and CONFIG SET notify-keyspace-events is refused; \
             watches see changes only at each resync (every heartbeat). Set \
             notify-keyspace-events to include Kg$xe on the server"
        );
    }
    false
}

/// The pattern to `PSUBSCRIBE` to for the keys under `prefix` in database `db`.
pub(crate) fn channel_pattern(db: u32, prefix: &str) -> String {
    format!("__keyspace@{db}__:{}*", escape_glob(prefix))
}

/// Whether a keyspace event can change a listing: everything but a TTL change (`expire`,
/// which every renewal sends, and `persist`).
pub(crate) fn changes_listing(event: &str) -> bool {
    !matches!(event, "expire" | "persist")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_missing_flags() {
        assert_eq!(missing_flags(""), Some("Kg$xe".into()));
        assert_eq!(missing_flags("KA"), None);
        assert_eq!(missing_flags("A"), Some("AK".into()));
        assert_eq!(missing_flags("Elx"), Some("ElxKg$e".into()));
        assert_eq!(missing_flags("xeKg$"), None);
    }

    #[test]
    fn patterns_escape_the_prefix() {
        assert_eq!(
            channel_pattern(2, "/rpc/a*:1/"),
            "__keyspace@2__:/rpc/a\\*:1/*"
        );
        assert!(changes_listing("set") && changes_listing("expired") && changes_listing("del"));
        assert!(!changes_listing("expire"));
    }
}
