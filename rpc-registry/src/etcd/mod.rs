//! `etcd://host:port[,host:port...][/root]`: the etcd v3 backend, on etcd-client.
//!
//! - [`endpoints`]: one client per endpoint; requests fail over to the next endpoint;
//! - [`lease`]: one lease per registry client, kept alive ([`keep_alive`]), replaced when
//!   lost; own nodes put in batches that never take a node another live lease holds
//!   ([`claims`]), and put back when someone removes them ([`guard`]);
//! - [`listing`] and [`watch`]: discovery, and snapshots that follow a prefix watch.

mod access;
mod claims;
mod documents;
mod endpoints;
mod error;
mod guard;
mod keep_alive;
mod lease;
mod listing;
mod own;
mod watch;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use etcd_client::GetOptions;
use futures::stream::BoxStream;
use rpc_core::backoff::{Backoff, Retries};
use rpc_core::documents::{DocumentKind, DocumentStream};
use rpc_core::registry::{Registry, RegistryError, ServiceInstance, ServiceKey, WatchEvent};

use self::documents::DocumentKeys;
use self::endpoints::Endpoints;
use self::error::BACKEND;
use self::lease::LeaseKeeper;
use self::listing::Reader;
use crate::layout::{self, WarnOnce};
use crate::options::{RegistryOptions, RegistryUrl, Scheme};

/// The shortest lease etcd grants with its default election timeout (1 s): 1.5 election
/// timeouts, rounded up to whole seconds.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);

/// The first retry delay of the background tasks (lease keeper, watches).
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Their longest retry delay, whatever the heartbeat.
const MAX_RETRY: Duration = Duration::from_millis(2_500);

/// Retry delays for the background tasks that retry forever: doubling from 100 ms, capped at
/// 2.5 s or at `heartbeat` if that is shorter (but never under 100 ms), so that a recovery is
/// noticed within about one heartbeat of etcd coming back. Each delay is drawn from the upper
/// half of its step (jitter 0.5), so that many clients recovering together do not retry in step.
pub(crate) fn retries(heartbeat: Duration) -> Retries {
    let max = MAX_RETRY.min(heartbeat).max(FIRST_RETRY);
    Backoff::new(FIRST_RETRY, max).with_jitter(0.5).retries()
}

/// A [`Registry`] on etcd v3.
///
/// Instances are put under one lease per client, granted on the first `register` with the
/// configured TTL and kept alive every heartbeat on etcd's keep-alive stream: one message per
/// heartbeat, however many instances. A lost lease is replaced and every instance put again;
/// an own node deleted or overwritten by someone else is put back as soon as etcd reports it
/// (one watch on the root). A node another live lease holds is never taken: `register` fails
/// with [`RegistryError::Taken`]. Concurrent registrations are batched into few transactions. Requests fail over between the endpoints. Dropping the registry stops
/// its background tasks without deleting anything (the lease then expires after its TTL);
/// [`Registry::shutdown`] deletes the nodes and revokes the lease at once.
#[derive(Debug)]
pub struct EtcdRegistry {
    endpoints: Arc<Endpoints>,
    options: RegistryOptions,
    keeper: OnceLock<LeaseKeeper>,
    warned: Arc<WarnOnce>,
    /// `true` once shut down; dropping it stops the keeper and the watch tasks.
    stop: tokio::sync::watch::Sender<bool>,
}

impl EtcdRegistry {
    /// A registry client for an `etcd://` URL. Connections are opened lazily, so this
    /// succeeds while etcd is down; failures show on the first request.
    pub async fn connect(url: RegistryUrl) -> Result<EtcdRegistry, RegistryError> {
        if url.scheme != Scheme::Etcd {
            return Err(RegistryError::BadUrl {
                url: url.original,
                message: "not an etcd:// URL".into(),
            });
        }
        let mut options = url.options;
        if options.ttl < MIN_TTL {
            // etcd grants no lease shorter than 1.5 election timeouts (2 s with its defaults)
            // and would lengthen it silently; say so instead.
            tracing::warn!(
                asked_s = options.ttl.as_secs_f64(),
                ttl_s = MIN_TTL.as_secs_f64(),
                "etcd: ttl below etcd's minimum lease TTL; using the minimum"
            );
            options.ttl = MIN_TTL;
        }
        let endpoints = Arc::new(Endpoints::connect(&url.endpoints, &options).await?);
        Ok(EtcdRegistry {
            endpoints,
            options,
            keeper: OnceLock::new(),
            warned: Arc::new(WarnOnce::default()),
            stop: tokio::sync::watch::channel(false).0,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The endpoints, comma separated.
    pub fn endpoints(&self) -> &str {
        self.endpoints.label()
    }

    /// The lease this client's instances are attached to, while one is live. `None` before
    /// the first registration and while a lost lease is being replaced.
    pub fn lease_id(&self) -> Option<i64> {
        self.keeper.get().and_then(LeaseKeeper::lease_id)
    }

    fn keeper(&self) -> &LeaseKeeper {
        self.keeper.get_or_init(|| {
            LeaseKeeper::start(self.endpoints.clone(), &self.options, self.stop.subscribe())
        })
    }

    fn reader(&self) -> Reader {
        Reader {
            endpoints: self.endpoints.clone(),
            root: self.options.root.clone(),
            warned: self.warned.clone(),
        }
    }

    fn check_open(&self) -> Result<(), RegistryError> {
        if *self.stop.borrow() {
            Err(RegistryError::Closed { registry: BACKEND })
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Registry for EtcdRegistry {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn register(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_open()?;
        let path = layout::node_path(&self.options.root, instance);
        // A refused password fails now, not after the wait for a lease the keeper cannot get.
        self.endpoints
            .check_credentials()
            .await
            .map_err(|f| f.into_error("register", &path))?;
        self.keeper().register(&path, &instance.to_json()).await
    }

    async fn deregister(&self, instance: &ServiceInstance) -> Result<(), RegistryError> {
        self.check_open()?;
        let path = layout::node_path(&self.options.root, instance);
        // Only our own node is deleted: a client that registered nothing owns nothing.
        match self.keeper.get() {
            Some(keeper) => keeper
                .deregister(&path)
                .await
                .map_err(|f| f.into_error("deregister", &path)),
            None => Ok(()),
        }
    }

    async fn discover(&self, key: &ServiceKey) -> Result<Vec<ServiceInstance>, RegistryError> {
        self.check_open()?;
        let prefix = layout::service_prefix(&self.options.root, key);
        let listing = self
            .reader()
            .list(&prefix, true)
            .await
            .map_err(|f| f.into_error("discover", &prefix))?;
        Ok(listing.instances())
    }

    async fn watch(
        &self,
        key: &ServiceKey,
    ) -> Result<BoxStream<'static, WatchEvent>, RegistryError> {
        self.check_open()?;
        watch::start(
            self.reader(),
            key,
            self.options.heartbeat,
            self.stop.subscribe(),
        )
        .await
        .map_err(|f| f.into_error("watch", &layout::service_prefix(&self.options.root, key)))
    }

    async fn services(&self) -> Result<Vec<ServiceKey>, RegistryError> {
        self.check_open()?;
        let root = self.options.root.clone();
        let prefix = layout::root_prefix(&root);
        let response = self
            .endpoints
            .call(|mut client| {
                let prefix = prefix.clone();
                async move {
                    let options = GetOptions::new().with_prefix().with_keys_only();
                    client.get(prefix, Some(options)).await
                }
            })
            .await
            .map_err(|f| f.into_error("services", &prefix))?;
        let keys: BTreeSet<ServiceKey> = response
            .kvs()
            .iter()
            .filter_map(|kv| layout::key_of_path(&root, &String::from_utf8_lossy(kv.key())).ok())
            .collect();
        Ok(keys.into_iter().collect())
    }

    async fn read_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
    ) -> Result<Option<String>, RegistryError> {
        self.check_open()?;
        let keys = DocumentKeys::new(&self.options.root, key);
        let (documents, _) = documents::read(&self.endpoints, &keys, true)
            .await
            .map_err(|f| f.into_error("read_document", &keys.path(kind)))?;
        Ok(documents.get(kind).map(str::to_string))
    }

    async fn write_document(
        &self,
        key: &ServiceKey,
        kind: DocumentKind,
        text: Option<&str>,
    ) -> Result<(), RegistryError> {
        self.check_open()?;
        let path = DocumentKeys::new(&self.options.root, key).path(kind);
        if let Some(text) = text {
            crate::documents::check_size(BACKEND, &path, text)?;
        }
        self.endpoints
            .call(|mut client| {
                let (path, text) = (path.clone(), text.map(str::to_string));
                async move {
                    match text {
                        Some(text) => client.put(path, text, None).await.map(drop),
                        None => client.delete(path, None).await.map(drop),
                    }
                }
            })
            .await
            .map_err(|f| f.into_error("write_document", &path))
    }

    async fn watch_documents(&self, key: &ServiceKey) -> Result<DocumentStream, RegistryError> {
        self.check_open()?;
        let keys = DocumentKeys::new(&self.options.root, key);
        let label = keys.path(DocumentKind::Routes);
        documents::start(
            self.endpoints.clone(),
            keys,
            retries(self.options.heartbeat),
            self.stop.subscribe(),
        )
        .await
        .map_err(|f| f.into_error("watch_documents", &label))
    }

    async fn shutdown(&self) -> Result<(), RegistryError> {
        if self.stop.send_replace(true) {
            return Ok(());
        }
        match self.keeper.get() {
            Some(keeper) => keeper
                .shutdown()
                .await
                .map_err(|f| f.into_error("shutdown", self.endpoints.label())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_100ms_to_the_heartbeat_or_2_5s() {
        let mut long = retries(Duration::from_secs(10));
        let delays: Vec<Duration> = (0..10).map(|_| long.next_delay()).collect();
        assert!(delays[0] >= FIRST_RETRY / 2 && delays[0] <= FIRST_RETRY);
        assert!(delays[1] >= FIRST_RETRY && delays[1] <= FIRST_RETRY * 2);
        assert!(delays.iter().all(|d| *d <= MAX_RETRY), "{delays:?}");
        assert!(delays[9] >= MAX_RETRY / 2, "{delays:?}");
        long.reset();
        assert!(long.next_delay() <= FIRST_RETRY);

        let mut short = retries(Duration::from_millis(600));
        assert!((0..10)
            .map(|_| short.next_delay())
            .all(|d| d <= Duration::from_millis(600)));

        // A heartbeat under 100 ms does not shrink the delays below the first one.
        let mut tiny = retries(Duration::from_millis(10));
        let delays: Vec<Duration> = (0..5).map(|_| tiny.next_delay()).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= FIRST_RETRY / 2 && *d <= FIRST_RETRY),
            "{delays:?}"
        );
    }
}
