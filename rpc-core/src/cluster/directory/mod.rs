//! The consumer's cache of instance lists, one per service key: discovered once, then kept
//! current by the registry's watch.
//!
//! - Readers get the current list with no lock and no await ([`ServiceEntry`]).
//! - Concurrent first lookups of one key make one registry request (single flight).
//! - While the registry is unreachable the last known list stays in use, reported as stale,
//!   and the watch is re-established with backoff.
//! - An optional snapshot file keeps the last lists on disk for starts without a registry.
//! - Empty protection keeps the last list when the registry suddenly reports none.

mod documents;
mod entry;
mod idle;
mod resolve;
mod snapshot_file;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::{BoxFuture, FutureExt, Shared};
use tokio_util::sync::CancellationToken;

pub use entry::ServiceEntry;
pub use resolve::{resolve_instance, HostResolver, Unresolved};

use super::endpoint::{EndpointTable, Members, RemovalHook};
use crate::backoff::Backoff;
use crate::registry::{Registry, RegistryError, ServiceInstance, ServiceKey};
use snapshot_file::SnapshotFile;

/// Directory settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DirectoryConfig {
    /// Where to keep the last known lists on disk. Default: `None` (no file).
    pub snapshot_file: Option<PathBuf>,
    /// Keep the last list when the registry suddenly reports zero instances for a key that
    /// had some; ejection still removes dead ones from it. Default: `true`.
    pub empty_protection: bool,
    /// Delays between attempts to re-establish a lost watch. Default: 100 ms doubling to
    /// 5 s, jitter 0.5.
    pub rewatch_backoff: Backoff,
    /// How long the first lookup of a key waits for the registry's first snapshot before
    /// falling back to the snapshot file or failing. Default: 5 s.
    pub discover_timeout: Duration,
    /// How host names in the registry become addresses. Default: the system resolver.
    pub resolver: HostResolver,
    /// Delays between attempts to resolve instances that did not resolve. Default: 250 ms
    /// doubling to 30 s, jitter 0.5; reset by every new list from the registry.
    pub resolve_backoff: Backoff,
    /// An entry no call looked up for this long is dropped with its watch (`None`: kept
    /// forever). An entry held outside the directory is kept. Default: 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// The most entries (each with one registry watch) live at once; at the bound the least
    /// recently used entries nobody holds make room. Default: 4,096.
    pub max_watches: usize,
    /// Watch each service's governance documents (one more watch per entry) and apply them
    /// to its snapshots and calls. Default: `true`.
    pub governance: bool,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            snapshot_file: None,
            empty_protection: true,
            rewatch_backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            discover_timeout: Duration::from_secs(5),
            resolver: HostResolver::system(),
            resolve_backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(600)),
            max_watches: 4_096,
            governance: true,
        }
    }
}

impl DirectoryConfig {
    /// Drops an entry (and its registry watch) no call used for `idle` (`None`: never);
    /// `client.directory_idle_ms`.
    pub fn idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Keeps at most `max` entries (registry watches) live; `client.max_watches`.
    pub fn max_watches(mut self, max: usize) -> Self {
        self.max_watches = max.max(1);
        self
    }

    /// Watches and applies governance documents (`true`), or not.
    pub fn governance(mut self, on: bool) -> Self {
        self.governance = on;
        self
    }
}

type Flight = Shared<BoxFuture<'static, Result<Arc<ServiceEntry>, RegistryError>>>;

/// The instance lists of every service key this consumer has looked up.
///
/// Dropping the directory stops its watches.
pub struct Directory {
    ctx: Arc<Context>,
}

/// What the directory's tasks share.
pub(super) struct Context {
    registry: Arc<dyn Registry>,
    config: DirectoryConfig,
    file: Option<SnapshotFile>,
    table: EndpointTable,
    shutdown: CancellationToken,
    /// Entries ready to read, by `<name>:<version>`; replaced whole on insert (rare).
    ready: ArcSwap<HashMap<String, Arc<ServiceEntry>>>,
    /// First lookups in progress.
    pending: Mutex<HashMap<String, Flight>>,
    /// The origin of the entries' use times.
    epoch: std::time::Instant,
    /// Serializes making room under `max_watches` with inserting a new entry.
    admit: Mutex<()>,
    /// Whether the idle sweeper runs.
    sweeper_started: std::sync::atomic::AtomicBool,
}

impl Context {
    /// Milliseconds since the directory was made: the clock of the entries' use times.
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("backend", &self.backend())
            .field("keys", &self.ctx.ready.load().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Directory {
    /// A directory over `registry` with default settings.
    pub fn new(registry: Arc<dyn Registry>) -> Directory {
        Directory::with_config(registry, DirectoryConfig::default())
    }

    /// A directory over `registry` with `config`.
    pub fn with_config(registry: Arc<dyn Registry>, config: DirectoryConfig) -> Directory {
        Directory::build(registry, config, None)
    }

    /// A directory that calls `on_removed` with each address no snapshot lists any more.
    pub(crate) fn build(
        registry: Arc<dyn Registry>,
        config: DirectoryConfig,
        on_removed: Option<RemovalHook>,
    ) -> Directory {
        let file = config.snapshot_file.as_deref().map(SnapshotFile::open);
        Directory {
            ctx: Arc::new(Context {
                registry,
                config,
                file,
                table: EndpointTable::new(on_removed),
                shutdown: CancellationToken::new(),
                ready: ArcSwap::from_pointee(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                admit: Mutex::new(()),
                epoch: std::time::Instant::now(),
                sweeper_started: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// The registry backend's name.
    pub fn backend(&self) -> &'static str {
        self.ctx.registry.backend()
    }

    /// The settings in force.
    pub fn config(&self) -> &DirectoryConfig {
        &self.ctx.config
    }

    /// The entry for `key`, discovering it and starting its watch on first use.
    ///
    /// Fails only on the first lookup, when the registry cannot be reached and the snapshot
    /// file has no list for the key; later lookups never touch the registry.
    pub async fn service(&self, key: &ServiceKey) -> Result<Arc<ServiceEntry>, RegistryError> {
        self.lookup(&key.to_string(), || key.clone()).await
    }

    /// The entry for `key` if it has been looked up already; never waits.
    pub fn cached(&self, key: &ServiceKey) -> Option<Arc<ServiceEntry>> {
        self.ctx.ready.load().get(&key.to_string()).cloned()
    }

    /// The entry for the key spelled `key` if it has been looked up already; never waits.
    pub(crate) fn cached_name(&self, key: &str) -> Option<Arc<ServiceEntry>> {
        self.ctx.ready.load().get(key).cloned()
    }

    /// Every live entry (looked up, and not dropped as idle).
    pub fn entries(&self) -> Vec<Arc<ServiceEntry>> {
        self.ctx.ready.load().values().cloned().collect()
    }

    /// How many entries, each with one registry watch, are live: at most
    /// [`DirectoryConfig::max_watches`].
    pub fn live_watches(&self) -> usize {
        self.ctx.ready.load().len()
    }

    /// The entry for the key spelled `key` (`<name>:<version>`); `make` builds the key on a
    /// first lookup. The fast path is one hash lookup in a lock-free map.
    pub(crate) async fn lookup(
        &self,
        key: &str,
        make: impl FnOnce() -> ServiceKey,
    ) -> Result<Arc<ServiceEntry>, RegistryError> {
        if let Some(entry) = self.ctx.ready.load().get(key) {
            entry.touch(self.ctx.now());
            return Ok(Arc::clone(entry));
        }
        let flight = {
            let mut pending = self.ctx.pending.lock().unwrap_or_else(|p| p.into_inner());
            // Re-check under the lock: a flight inserts into `ready` before leaving `pending`.
            if let Some(entry) = self.ctx.ready.load().get(key) {
                return Ok(Arc::clone(entry));
            }
            match pending.get(key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = start_flight(Arc::clone(&self.ctx), key.to_string(), make());
                    pending.insert(key.to_string(), flight.clone());
                    flight
                }
            }
        };
        flight.await
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.ctx.shutdown.cancel();
    }
}

/// Runs the first lookup of `key` as a task, so it finishes even if every waiter gives up.
fn start_flight(ctx: Arc<Context>, name: String, key: ServiceKey) -> Flight {
    let backend = ctx.registry.backend();
    let task = tokio::spawn(open(ctx, name.clone(), key));
    async move {
        match task.await {
            Ok(result) => result,
            Err(join) => Err(RegistryError::Operation {
                registry: backend,
                op: "watch",
                key: name,
                message: format!("directory task failed: {join}"),
            }),
        }
    }
    .boxed()
    .shared()
}

/// Discovers `key` (watch, first snapshot), publishes the entry, and starts following.
async fn open(
    ctx: Arc<Context>,
    name: String,
    key: ServiceKey,
) -> Result<Arc<ServiceEntry>, RegistryError> {
    let (result, (latest, in_force, documents)) =
        tokio::join!(watch::first_snapshot(&ctx, &key), async {
            if ctx.config.governance {
                documents::first(&ctx, &key).await
            } else {
                (documents::Latest::default(), None, None)
            }
        });
    let saved = ctx.file.as_ref().and_then(|file| file.get(&key));
    let mut warned = HashSet::new();
    let opened = match result {
        Ok((list, stream)) => {
            let members = build_members(&ctx, &name, list, &mut warned).await;
            let entry = Arc::new(ServiceEntry::new(key, members, false, entry_clock(&ctx)));
            if let Some(file) = &ctx.file {
                file.update(entry.key(), &entry.instances());
            }
            Ok((entry, Some(stream)))
        }
        Err((error, stream)) => match saved {
            Some(list) => {
                tracing::warn!(
                    service = %name,
                    %error,
                    instances = list.len(),
                    file = ?ctx.file.as_ref().map(|f| f.path().display().to_string()),
                    "registry unreachable; using the snapshot file's list until it is back"
                );
                let members = build_members(&ctx, &name, list, &mut warned).await;
                Ok((
                    Arc::new(ServiceEntry::new(key, members, true, entry_clock(&ctx))),
                    stream,
                ))
            }
            None => Err(error),
        },
    };
    // In force before anyone can see the entry, so no call routes without it.
    if let (Ok((entry, _)), Some(in_force)) = (&opened, in_force) {
        entry.set_governance(in_force);
    }
    idle::start_sweeper(&ctx);
    // Room and insert under one lock, so concurrent first lookups never pass the bound.
    let admitted = ctx.admit.lock().unwrap_or_else(|p| p.into_inner());
    let opened = opened.and_then(|(entry, stream)| {
        if !idle::make_room(&ctx) {
            return Err(RegistryError::Operation {
                registry: ctx.registry.backend(),
                op: "watch",
                key: name.clone(),
                message: format!(
                    "the directory already watches {} keys (max_watches), all in use",
                    ctx.config.max_watches
                ),
            });
        }
        ctx.ready.rcu(|ready| {
            let mut ready = HashMap::clone(ready);
            ready.insert(name.clone(), Arc::clone(&entry));
            ready
        });
        Ok((entry, stream))
    });
    drop(admitted);
    match opened {
        Ok((entry, stream)) => {
            remove_pending(&ctx, &name);
            if ctx.config.governance {
                tokio::spawn(documents::follow(
                    Arc::clone(&ctx),
                    &entry,
                    latest,
                    documents,
                ));
            }
            tokio::spawn(watch::follow(
                Arc::clone(&ctx),
                Arc::clone(&entry),
                stream,
                warned,
            ));
            Ok(entry)
        }
        Err(error) => {
            remove_pending(&ctx, &name);
            Err(error)
        }
    }
}

/// A new entry's stop token and first use time.
fn entry_clock(ctx: &Context) -> (CancellationToken, u64) {
    (ctx.shutdown.child_token(), ctx.now())
}

fn remove_pending(ctx: &Context, name: &str) {
    ctx.pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
}

/// Resolves a list into a snapshot, and the instances that did not resolve.
async fn build_members(
    ctx: &Context,
    name: &str,
    list: Vec<ServiceInstance>,
    warned: &mut HashSet<String>,
) -> (Members, Vec<resolve::Unresolved>) {
    let resolution = resolve::resolve(name, &ctx.config.resolver, &list, warned).await;
    let endpoints = ctx.table.endpoints(resolution.usable);
    (
        Members::new(Arc::new(list), endpoints),
        resolution.unresolved,
    )
}
