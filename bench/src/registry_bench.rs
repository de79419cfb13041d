//! `rpc-bench registry`: registry figures with real etcd, ZooKeeper and Redis servers.
//!
//! - **Propagation**: a provider registers (then deregisters) an instance; the time from the
//!   start of that call until a watching consumer's [`Directory`] lists it (no longer lists
//!   it), over `--changes` registrations and as many deregistrations.
//! - **Crash**: a provider process with TTL 2 s is killed with SIGKILL; the time until the
//!   consumer's `Directory` no longer lists it.
//! - **Scale**: one provider client registers `--instances` instances over `--services`
//!   services (64 registrations in flight); then a new consumer process discovers every
//!   service through its own `Directory` (which also keeps a watch per service); its
//!   discovery time and resident memory are reported.
//!
//! Each changing service also has a sentinel instance that never leaves, so the directory's
//! empty-list protection never applies.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use rpc_core::cluster::{Directory, DirectoryConfig, ServiceEntry};
use rpc_core::{Registry, ServiceInstance, ServiceKey};
use serde::{Deserialize, Serialize};

use crate::child::die_with_parent;
use crate::cpu::resident_bytes;
use crate::registry_servers::{Backend, RegistryServer};
use crate::systems::BenchError;

/// How long any one change may take to show before the run fails.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Registrations in flight at once in the scale test.
const REGISTER_CONCURRENCY: usize = 64;
/// The layout root of the scale test, apart from the other tests' keys.
const SCALE_ROOT: &str = "/rpcscale";
/// The scale test's provider options: a heartbeat short enough that several fall inside
/// the registration of every instance.
const SCALE_QUERY: &str = "ttl=3&heartbeat=0.25";
/// Its heartbeat.
const SCALE_HEARTBEAT: Duration = Duration::from_millis(250);
/// Heartbeats over which the registry's request rate is counted.
const COUNTED_HEARTBEATS: u32 = 8;

/// Options of `rpc-bench registry`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Backends to measure, comma separated.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Backend::Etcd, Backend::Zookeeper])]
    backends: Vec<Backend>,
    /// Registrations (and as many deregistrations) timed in the propagation test.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Changes timed on Nacos instead: rnacos batches its pushes for about a second, so each
    /// sequential change costs about 2 s there and 200 would take minutes.
    #[arg(long, default_value_t = 30)]
    nacos_changes: usize,
    /// SIGKILLed providers in the crash test.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Provider lease TTL / session timeout in the crash test, seconds.
    #[arg(long, default_value_t = 2.0)]
    ttl: f64,
    /// Instances registered in the scale test.
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    /// Services those instances spread over.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Writes the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

/// Options of the hidden `registry-provider` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ProviderArgs {
    /// Registry URL.
    #[arg(long)]
    url: String,
    /// Service name.
    #[arg(long)]
    service: String,
    /// Port of the instance.
    #[arg(long)]
    port: u16,
}

/// Options of the hidden `registry-discover` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct DiscoverArgs {
    /// Registry URL.
    #[arg(long)]
    url: String,
    /// Services expected.
    #[arg(long)]
    services: usize,
    /// Instances expected per service.
    #[arg(long)]
    per_service: usize,
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Spread {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Spread {
        samples.sort_unstable();
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            ms(samples[rank - 1])
        };
        Spread {
            n: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: samples.last().copied().map_or(0.0, ms),
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

/// What the discovering consumer process reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    /// Services found.
    pub services: usize,
    /// Instances across them.
    pub instances: usize,
    /// From connecting to the registry until every service's entry lists all its instances.
    pub discover_ms: f64,
    /// Resident memory before connecting (runtime started), bytes.
    pub rss_before: u64,
    /// Resident memory with every service discovered and watched, bytes.
    pub rss_after: u64,
}

/// Every figure of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendFigures {
    /// `etcd`, `zookeeper`, `redis` or `nacos`.
    pub backend: String,
    /// Registration until the consumer's directory lists the instance.
    pub register_to_visible: Spread,
    /// Deregistration until the consumer's directory drops the instance.
    pub deregister_to_gone: Spread,
    /// Crash-test TTL, seconds.
    pub ttl_s: f64,
    /// SIGKILL until the consumer's directory drops the instance, one per kill.
    pub kill_to_gone_ms: Vec<f64>,
    /// Instances registered in the scale test.
    pub scale_instances: usize,
    /// Services they spread over.
    pub scale_services: usize,
    /// Time to register them all (64 in flight, one provider client).
    pub register_all_ms: f64,
    /// The new consumer's discovery.
    pub discovery: Discovery,
    /// The provider client's heartbeat in the scale test, ms.
    pub heartbeat_ms: f64,
    /// Requests the registry server received per heartbeat with one instance registered.
    pub requests_per_heartbeat_one: RequestRate,
    /// The same with every scale-test instance registered.
    pub requests_per_heartbeat_all: RequestRate,
    /// Writing an overrides document until a watching consumer has it in force (`None`:
    /// the backend keeps no governance documents).
    pub governance_to_applied: Option<Spread>,
}

/// Requests a registry server received per heartbeat, counted on the server.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRate {
    /// Every kind together.
    pub total: f64,
    /// By kind: etcd gRPC method, or ZooKeeper `packets`.
    pub by_kind: std::collections::BTreeMap<String, f64>,
}

/// Counts the requests `server` receives over [`COUNTED_HEARTBEATS`] heartbeats.
async fn request_rate(server: &RegistryServer) -> Result<RequestRate, BenchError> {
    let before = server.requests_received().await?;
    if before.is_empty() {
        // Not measured on this backend: NaN, which the JSON shows as null.
        return Ok(RequestRate {
            total: f64::NAN,
            by_kind: Default::default(),
        });
    }
    tokio::time::sleep(SCALE_HEARTBEAT * COUNTED_HEARTBEATS).await;
    let after = server.requests_received().await?;
    let beats = f64::from(COUNTED_HEARTBEATS);
    let by_kind: std::collections::BTreeMap<String, f64> = after
        .iter()
        .map(|(kind, n)| {
            let delta = n.saturating_sub(before.get(kind).copied().unwrap_or(0));
            (kind.clone(), delta as f64 / beats)
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    Ok(RequestRate {
        total: by_kind.values().sum(),
        by_kind,
    })
}

/// The `registry` subcommand.
pub fn main(args: &RegistryArgs) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut all = Vec::new();
    for &backend in &args.backends {
        let figures = runtime.block_on(measure_backend(backend, args))?;
        all.push(figures);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    println!("{}", crate::registry_report::table(&all));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&all)? + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

async fn measure_backend(
    backend: Backend,
    args: &RegistryArgs,
) -> Result<BackendFigures, BenchError> {
    eprintln!("{}: starting server", backend.name());
    let server = RegistryServer::start(backend).await?;

    let changes = match backend {
        Backend::Nacos => args.nacos_changes,
        _ => args.changes,
    };
    eprintln!(
        "{}: propagation, {changes} registrations and deregistrations",
        backend.name(),
    );
    let (register, deregister) = propagation(&server, changes).await?;

    eprintln!(
        "{}: crash, {} providers killed with TTL {} s",
        backend.name(),
        args.kills,
        args.ttl
    );
    let kills = crash(&server, args.kills, args.ttl).await?;

    eprintln!(
        "{}: scale, {} instances over {} services",
        backend.name(),
        args.instances,
        args.services
    );
    let scaled = scale(&server, args.instances, args.services).await?;

    eprintln!(
        "{}: governance push, {changes} overrides changes",
        backend.name()
    );
    let url = server.url("");
    let governance =
        crate::governance_bench::propagation(connect(&url).await?, connect(&url).await?, changes)
            .await?;
    Ok(BackendFigures {
        backend: backend.name().to_string(),
        register_to_visible: Spread::of(register),
        deregister_to_gone: Spread::of(deregister),
        ttl_s: args.ttl,
        kill_to_gone_ms: kills.into_iter().map(ms).collect(),
        scale_instances: args.instances,
        scale_services: args.services,
        register_all_ms: ms(scaled.register_all),
        discovery: scaled.discovery,
        heartbeat_ms: ms(SCALE_HEARTBEAT),
        requests_per_heartbeat_one: scaled.rate_one,
        requests_per_heartbeat_all: scaled.rate_all,
        governance_to_applied: governance,
    })
}

/// The provider-list figures are measured without the governance watch, as before it
/// existed, so old and new runs compare.
fn without_governance() -> DirectoryConfig {
    DirectoryConfig::default().governance(false)
}

async fn connect(url: &str) -> Result<Arc<dyn Registry>, BenchError> {
    Ok(rpc_registry::connect(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?)
}

/// Waits until `entry` lists (or, with `present` false, no longer lists) port `port`, and
/// returns when it saw that. `generation` is the entry's generation from before the change.
async fn until_listed(
    entry: &ServiceEntry,
    port: u16,
    present: bool,
    mut generation: u64,
) -> Result<Instant, BenchError> {
    let wait = async {
        loop {
            if entry.instances().iter().any(|i| i.port == port) == present {
                return Instant::now();
            }
            generation = entry.changed_since(generation).await;
        }
    };
    tokio::time::timeout(SHOW_TIMEOUT, wait).await.map_err(|_| {
        format!(
            "{}: port {port} still {} after {SHOW_TIMEOUT:?}",
            entry.key(),
            if present { "missing" } else { "listed" }
        )
        .into()
    })
}

async fn propagation(
    server: &RegistryServer,
    changes: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
    let url = server.url("");
    let provider = connect(&url).await?;
    let consumer = Directory::with_config(connect(&url).await?, without_governance());
    let key = ServiceKey::new("bench.Propagation", "1.0.0");
    provider
        .register(&ServiceInstance::new(&key, "127.0.0.1", 1))
        .await?;
    let entry = consumer.service(&key).await?;
    until_listed(&entry, 1, true, entry.generation()).await?;
    let mut register = Vec::with_capacity(changes);
    let mut deregister = Vec::with_capacity(changes);
    for i in 0..changes {
        let port = 20_000 + u16::try_from(i % 40_000)?;
        let instance = ServiceInstance::new(&key, "127.0.0.1", port);
        let generation = entry.generation();
        let started = Instant::now();
        provider.register(&instance).await?;
        register.push(until_listed(&entry, port, true, generation).await? - started);

        let generation = entry.generation();
        let started = Instant::now();
        provider.deregister(&instance).await?;
        deregister.push(until_listed(&entry, port, false, generation).await? - started);
    }
    let _ = provider.shutdown().await;
    Ok((register, deregister))
}

async fn crash(
    server: &RegistryServer,
    kills: usize,
    ttl: f64,
) -> Result<Vec<Duration>, BenchError> {
    let url = server.url("");
    let sentinel = connect(&url).await?;
    let consumer = Directory::with_config(connect(&url).await?, without_governance());
    let key = ServiceKey::new("bench.Crash", "1.0.0");
    sentinel
        .register(&ServiceInstance::new(&key, "127.0.0.1", 1))
        .await?;
    let entry = consumer.service(&key).await?;
    let provider_url = server.url(&format!("ttl={ttl}"));
    let mut times = Vec::new();
    for i in 0..kills {
        let port = 30_000 + u16::try_from(i)?;
        let generation = entry.generation();
        let mut child = spawn_provider(&provider_url, "bench.Crash", port)?;
        until_listed(&entry, port, true, generation).await?;
        // Let the provider settle into its keep-alive rhythm.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let generation = entry.generation();
        let started = Instant::now();
        child.kill()?;
        let gone = until_listed(&entry, port, false, generation).await?;
        let _ = child.wait();
        times.push(gone - started);
    }
    let _ = sentinel.shutdown().await;
    Ok(times)
}

fn spawn_provider(url: &str, service: &str, port: u16) -> Result<Child, BenchError> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["registry-provider", "--url", url, "--service", service])
        .args(["--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    die_with_parent(&mut command);
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().ok_or("provider has no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim() != "READY" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("registry provider said {line:?} instead of READY").into());
    }
    Ok(child)
}

/// The hidden `registry-provider` subcommand: registers one instance, says `READY`, and waits
/// to be killed.
pub fn provider_main(args: &ProviderArgs) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let registry = connect(&args.url).await?;
        let key = ServiceKey::new(args.service.clone(), "1.0.0");
        registry
            .register(&ServiceInstance::new(&key, "127.0.0.1", args.port))
            .await?;
        println!("READY");
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn scale_name(service: usize) -> String {
    format!("bench.Scale{service:05}")
}

/// What the scale test measured.
struct Scaled {
    register_all: Duration,
    discovery: Discovery,
    rate_one: RequestRate,
    rate_all: RequestRate,
}

async fn scale(
    server: &RegistryServer,
    instances: usize,
    services: usize,
) -> Result<Scaled, BenchError> {
    let services = services.max(1);
    let per_service = instances.div_ceil(services);
    let url = with_root(&server.url(""), SCALE_ROOT);
    let provider = connect(&with_root(&server.url(SCALE_QUERY), SCALE_ROOT)).await?;
    provider
        .register(&ServiceInstance::new(
            &ServiceKey::new("bench.Idle", "1.0.0"),
            "127.0.0.1",
            1,
        ))
        .await?;
    let rate_one = request_rate(server).await?;
    let list: Vec<ServiceInstance> = (0..instances)
        .map(|i| {
            let key = ServiceKey::new(scale_name(i % services), "1.0.0");
            let port = 40_000 + u16::try_from(i / services).unwrap_or(0);
            ServiceInstance::new(&key, "127.0.0.1", port)
        })
        .collect();
    let started = Instant::now();
    futures::stream::iter(list.iter())
        .map(|instance| provider.register(instance))
        .buffer_unordered(REGISTER_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let register_all = started.elapsed();
    tokio::time::sleep(SCALE_HEARTBEAT).await;
    let rate_all = request_rate(server).await?;

    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["registry-discover", "--url", &url])
        .args(["--services", &services.to_string()])
        .args(["--per-service", &per_service.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    die_with_parent(&mut command);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        return Err(format!("registry-discover failed: {}", output.status).into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let discovery: Discovery = serde_json::from_str(text.trim())
        .map_err(|e| format!("registry-discover printed {text:?}: {e}"))?;
    drop(provider);
    Ok(Scaled {
        register_all,
        discovery,
        rate_one,
        rate_all,
    })
}

/// `scheme://hosts?query` with `root` as its path.
fn with_root(url: &str, root: &str) -> String {
    // The `root` option, not the URL path: a redis:// path is the database number. Nacos has
    // groups instead of roots.
    let separator = if url.contains('?') { '&' } else { '?' };
    match url.strip_prefix("nacos://") {
        Some(_) => format!("{url}{separator}group={}", root.trim_start_matches('/')),
        None => format!("{url}{separator}root={root}"),
    }
}

/// The hidden `registry-discover` subcommand: a new consumer that discovers every service of
/// the scale test and reports its time and memory as one JSON line.
pub fn discover_main(args: &DiscoverArgs) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let discovery = runtime.block_on(async {
        let rss_before = resident_bytes().unwrap_or(0);
        let started = Instant::now();
        let registry = connect(&args.url).await?;
        let directory = Directory::with_config(Arc::clone(&registry), without_governance());
        let keys: Vec<ServiceKey> = registry
            .services()
            .await?
            .into_iter()
            .filter(|k| k.name().starts_with("bench.Scale"))
            .collect();
        if keys.len() != args.services {
            return Err(
                format!("found {} services, expected {}", keys.len(), args.services).into(),
            );
        }
        let entries: Vec<Arc<ServiceEntry>> = futures::stream::iter(keys.iter())
            .map(|key| directory.service(key))
            .buffer_unordered(REGISTER_CONCURRENCY)
            .try_collect()
            .await?;
        let mut instances = 0;
        for entry in &entries {
            let mut generation = entry.generation();
            let wait = async {
                while entry.instances().len() < args.per_service {
                    generation = entry.changed_since(generation).await;
                }
            };
            tokio::time::timeout(SHOW_TIMEOUT, wait)
                .await
                .map_err(|_| {
                    format!(
                        "{} never listed {} instances",
                        entry.key(),
                        args.per_service
                    )
                })?;
            instances += entry.instances().len();
        }
        let discover = started.elapsed();
        let rss_after = resident_bytes().unwrap_or(0);
        drop(directory);
        Ok::<_, BenchError>(Discovery {
            services: entries.len(),
            instances,
            discover_ms: ms(discover),
            rss_before,
            rss_after,
        })
    })?;
    println!("{}", serde_json::to_string(&discovery)?);
    runtime.shutdown_background();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_rank() {
        let samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let spread = Spread::of(samples);
        assert_eq!(spread.p50_ms, 100.0);
        assert_eq!(spread.p99_ms, 198.0);
        assert_eq!(spread.max_ms, 200.0);
    }

    #[test]
    fn root_goes_in_the_query() {
        assert_eq!(
            with_root("etcd://h:1?ttl=2", "/r"),
            "etcd://h:1?ttl=2&root=/r"
        );
        assert_eq!(with_root("redis://h:1", "/r"), "redis://h:1?root=/r");
        assert_eq!(
            with_root("nacos://h:1?grpc_port=2", "/r"),
            "nacos://h:1?grpc_port=2&group=r"
        );
    }
}
