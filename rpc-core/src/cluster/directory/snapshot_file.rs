//! The directory's snapshot file: the last known instance lists on disk, so a consumer that
//! starts while the registry is down still finds its providers.
//!
//! The file is JSON (`{"format":1,"saved_at_ms":..,"services":{"<key>":[<layout JSON>..]}}`),
//! rewritten on every change through a temporary file and a rename, so a reader never sees
//! half a file.
//!
//! One file may be shared by several directories, in one process or many: each write reads
//! the file first and replaces only the keys this directory updated (merge on write), so
//! nobody drops another's lists. The read, merge and rename happen under an exclusive lock
//! on a lock file beside it (`.<name>.lock`, kept): without it, a writer that read the file
//! before another's rename would rename its older copy over the other's newer lists. Every
//! temporary file has a name of its own (process id, a counter and a random number).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::registry::{now_ms, ServiceInstance, ServiceKey};

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct FileBody {
    format: u32,
    #[serde(default)]
    saved_at_ms: u64,
    #[serde(default)]
    services: BTreeMap<String, Vec<ServiceInstance>>,
}

/// Tells temporary files of one process apart.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The last known lists, in memory and on disk.
pub(crate) struct SnapshotFile {
    path: PathBuf,
    lists: Arc<Mutex<Lists>>,
    /// The generation last written; writes of older generations are skipped.
    written: Arc<Mutex<u64>>,
}

struct Lists {
    services: BTreeMap<String, Vec<ServiceInstance>>,
    /// The keys this directory updated: the ones its writes own.
    updated: BTreeSet<String>,
    generation: u64,
}

impl SnapshotFile {
    /// Opens `path`, loading whatever lists it holds; a missing or unreadable file starts
    /// empty (unreadable ones with a warning).
    pub(crate) fn open(path: &Path) -> SnapshotFile {
        SnapshotFile {
            path: path.to_path_buf(),
            lists: Arc::new(Mutex::new(Lists {
                services: read_lists(path, true),
                updated: BTreeSet::new(),
                generation: 0,
            })),
            written: Arc::new(Mutex::new(0)),
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The saved list of `key`, if the file has one.
    pub(crate) fn get(&self, key: &ServiceKey) -> Option<Vec<ServiceInstance>> {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.services.get(&key.to_string()).cloned()
    }

    /// Replaces `key`'s list and rewrites the file in the background.
    pub(crate) fn update(&self, key: &ServiceKey, list: &[ServiceInstance]) {
        let generation = {
            let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
            lists.services.insert(key.to_string(), list.to_vec());
            lists.updated.insert(key.to_string());
            lists.generation += 1;
            lists.generation
        };
        let path = self.path.clone();
        let lists = Arc::clone(&self.lists);
        let written = Arc::clone(&self.written);
        tokio::task::spawn_blocking(move || {
            let mut last = written.lock().unwrap_or_else(|p| p.into_inner());
            if *last >= generation {
                return;
            }
            match write_merged(&path, &lists) {
                Ok(()) => *last = generation,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot write the snapshot file")
                }
            }
        });
    }
}

/// The lists in the file at `path`; an unreadable file gives none (with a warning when
/// `warn`).
fn read_lists(path: &Path, warn: bool) -> BTreeMap<String, Vec<ServiceInstance>> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<FileBody>(&bytes) {
            Ok(body) if body.format == FORMAT => body.services,
            Ok(body) => {
                if warn {
                    tracing::warn!(path = %path.display(), format = body.format, "snapshot file has an unknown format; ignoring it");
                }
                BTreeMap::new()
            }
            Err(error) => {
                if warn {
                    tracing::warn!(path = %path.display(), %error, "snapshot file does not parse; ignoring it");
                }
                BTreeMap::new()
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => {
            if warn {
                tracing::warn!(path = %path.display(), %error, "cannot read snapshot file; ignoring it");
            }
            BTreeMap::new()
        }
    }
}

/// Merges this directory's lists over the file's and writes the result, holding the lock
/// file so that no other writer reads or renames in between.
fn write_merged(path: &Path, lists: &Mutex<Lists>) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(&dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!(".{}.lock", file_name(path))))?;
    lock.lock()?;
    let mut services = read_lists(path, false);
    {
        let lists = lists.lock().unwrap_or_else(|p| p.into_inner());
        for key in &lists.updated {
            if let Some(list) = lists.services.get(key) {
                services.insert(key.clone(), list.clone());
            }
        }
    }
    let body = FileBody {
        format: FORMAT,
        saved_at_ms: now_ms(),
        services,
    };
    let bytes = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other)?;
    // The lock is released when `lock` closes, after the rename.
    write_atomically(path, &bytes)
}

/// The directory holding `path`.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file name of `path`, for the names of its temporary and lock files.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "directory-snapshot.json".to_string())
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
/// The directory exists: `write_merged` made it for its lock file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    let name = file_name(path);
    let temp = dir.join(format!(
        ".{name}.{}.{}.{:x}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_keeps_other_keys() {
        let dir =
            std::env::temp_dir().join(format!("rpc-snap-{}-{}", std::process::id(), now_ms()));
        let path = dir.join("snap.json");
        let a = ServiceKey::new("t.A", "1");
        let b = ServiceKey::new("t.B", "1");
        let file = SnapshotFile::open(&path);
        assert!(file.get(&a).is_none());
        file.update(&a, &[ServiceInstance::new(&a, "127.0.0.1", 1)]);
        file.update(&b, &[ServiceInstance::new(&b, "127.0.0.1", 2)]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let reopened = SnapshotFile::open(&path);
            if reopened.get(&b).is_some() {
                assert_eq!(reopened.get(&a).map(|l| l[0].port), Some(1));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "file never written");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        std::fs::write(&path, b"{not json").unwrap();
        assert!(SnapshotFile::open(&path).get(&a).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod sharing {
    use super::*;
    use std::time::{Duration, Instant};

    /// Two directories (each holds one `SnapshotFile`) share a file and keep updating their
    /// own keys; a third reader, throughout and at the end, parses the file and finds both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_directories_sharing_a_snapshot_file_under_churn_leave_both_lists() {
        let dir = std::env::temp_dir().join(format!(
            "rpc-snap-share-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let path = dir.join("shared.json");
        let a = ServiceKey::new("t.A", "1");
        let b = ServiceKey::new("t.B", "1");
        let first = SnapshotFile::open(&path);
        let second = SnapshotFile::open(&path);
        let rounds: u16 = 200;
        for port in 1..=rounds {
            first.update(&a, &[ServiceInstance::new(&a, "127.0.0.1", port)]);
            second.update(&b, &[ServiceInstance::new(&b, "127.0.0.1", port)]);
            if let Ok(bytes) = std::fs::read(&path) {
                serde_json::from_slice::<FileBody>(&bytes)
                    .unwrap_or_else(|e| panic!("a reader saw a broken file during churn: {e}"));
            }
            tokio::task::yield_now().await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body: FileBody = match std::fs::read(&path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("the third reader cannot parse the file: {e}")),
                Err(_) => FileBody {
                    format: FORMAT,
                    saved_at_ms: 0,
                    services: BTreeMap::new(),
                },
            };
            let last = |key: &ServiceKey| {
                body.services
                    .get(&key.to_string())
                    .and_then(|l| l.first())
                    .map(|i| i.port)
            };
            let temporary = std::fs::read_dir(&dir).map_or(0, |d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                    .count()
            });
            // Both lists current, and no write still in progress (no temporary file left).
            if last(&a) == Some(rounds) && last(&b) == Some(rounds) && temporary == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the file lost a list or a temporary file stayed: A {:?}, B {:?}, {temporary} temporary files",
                last(&a),
                last(&b)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
