//! The directory's snapshot file: the last known instance lists on disk, so a consumer that
//! starts while the registry is down still finds its providers.
//!
//! The file is JSON (`{"format":1,"saved_at_ms":..,"services":{"<key>":[<layout JSON>..]}}`),
//! rewritten on every change through a temporary file and a rename, so a reader never sees
//! half a file. Lists of keys this process never looked up are kept as they were.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
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

/// The last known lists, in memory and on disk.
pub(crate) struct SnapshotFile {
    path: PathBuf,
    lists: Mutex<Lists>,
    /// The generation last written; writes of older generations are skipped.
    written: Arc<Mutex<u64>>,
}

struct Lists {
    services: BTreeMap<String, Vec<ServiceInstance>>,
    generation: u64,
}

impl SnapshotFile {
    /// Opens `path`, loading whatever lists it holds; a missing or unreadable file starts
    /// empty (unreadable ones with a warning).
    pub(crate) fn open(path: &Path) -> SnapshotFile {
        let services = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<FileBody>(&bytes) {
                Ok(body) if body.format == FORMAT => body.services,
                Ok(body) => {
                    tracing::warn!(path = %path.display(), format = body.format, "snapshot file has an unknown format; ignoring it");
                    BTreeMap::new()
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "snapshot file does not parse; ignoring it");
                    BTreeMap::new()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read snapshot file; ignoring it");
                BTreeMap::new()
            }
        };
        SnapshotFile {
            path: path.to_path_buf(),
            lists: Mutex::new(Lists {
                services,
                generation: 0,
            }),
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
        let (bytes, generation) = {
            let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
            lists.services.insert(key.to_string(), list.to_vec());
            lists.generation += 1;
            let body = FileBody {
                format: FORMAT,
                saved_at_ms: now_ms(),
                services: lists.services.clone(),
            };
            match serde_json::to_vec_pretty(&body) {
                Ok(bytes) => (bytes, lists.generation),
                Err(error) => {
                    tracing::warn!(%error, "cannot encode the snapshot file");
                    return;
                }
            }
        };
        let path = self.path.clone();
        let written = Arc::clone(&self.written);
        tokio::task::spawn_blocking(move || {
            let mut last = written.lock().unwrap_or_else(|p| p.into_inner());
            if *last >= generation {
                return;
            }
            match write_atomically(&path, &bytes) {
                Ok(()) => *last = generation,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot write the snapshot file")
                }
            }
        });
    }
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "directory-snapshot.json".to_string());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
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
