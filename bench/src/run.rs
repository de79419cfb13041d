//! The echo benchmark's plan and its execution: one server subprocess per system, one fresh
//! client runtime per point, results as report rows.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::child::ServerProcess;
use crate::cpu::Usage;
use crate::load::{self, Point};
use crate::report::Row;
use crate::systems::{self, BenchError, EchoClient, System};
use rpc_core::Codec;

/// A system with a connection count: one line of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The system.
    pub system: System,
    /// Client connections (only `rpc` and `raw` use more than one).
    pub connections: usize,
    /// The body codec of `rpc` calls; `None` for the client's default.
    pub codec: Option<Codec>,
}

impl Target {
    /// The system's name, with the codec when one was chosen (`rpc/postcard`).
    pub fn label(&self) -> String {
        match self.codec {
            Some(codec) => format!("{}/{}", self.system.name(), codec.name()),
            None => self.system.name().to_string(),
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Systems with their connection counts, in run order.
    pub targets: Vec<Target>,
    /// Payload sizes in bytes.
    pub payloads: Vec<usize>,
    /// Closed-loop concurrencies.
    pub concurrencies: Vec<usize>,
    /// Warm-up per point.
    pub warmup: Duration,
    /// Measured window per point.
    pub duration: Duration,
}

impl Plan {
    /// The default targets: every system over one connection, and `rpc` over four too, in
    /// each of `rpc_codecs` (none: the client's default codec).
    pub fn default_targets(
        systems: &[System],
        rpc_connections: &[usize],
        rpc_codecs: &[Codec],
    ) -> Vec<Target> {
        let codecs: Vec<Option<Codec>> = if rpc_codecs.is_empty() {
            vec![None]
        } else {
            rpc_codecs.iter().copied().map(Some).collect()
        };
        let mut targets = Vec::new();
        for &system in systems {
            if system.is_rpc() {
                for &connections in rpc_connections {
                    for &codec in &codecs {
                        targets.push(Target {
                            system,
                            connections,
                            codec,
                        });
                    }
                }
            } else {
                targets.push(Target {
                    system,
                    connections: 1,
                    codec: None,
                });
            }
        }
        targets
    }

    /// The full run: 128 B, 1 KiB and 16 KiB at concurrency 1, 16, 64 and 256.
    pub fn full(systems: &[System]) -> Plan {
        Plan {
            targets: Plan::default_targets(systems, &[1, 4], &[]),
            payloads: vec![128, 1024, 16 * 1024],
            concurrencies: vec![1, 16, 64, 256],
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
        }
    }

    /// The quick run (under a minute): 128 B at concurrency 1, 64 and 256.
    pub fn quick(systems: &[System]) -> Plan {
        Plan {
            targets: Plan::default_targets(systems, &[1, 4], &[]),
            payloads: vec![128],
            concurrencies: vec![1, 64, 256],
            warmup: Duration::from_millis(500),
            duration: Duration::from_secs(2),
        }
    }

    /// How many points the plan measures.
    pub fn points(&self) -> usize {
        self.targets.len() * self.payloads.len() * self.concurrencies.len()
    }
}

/// Runs every point of `plan`, printing progress to stderr.
pub fn execute(plan: &Plan) -> Result<Vec<Row>, BenchError> {
    let mut rows = Vec::new();
    let total = plan.points();
    for target in &plan.targets {
        if !target.system.supports_connections(target.connections) {
            return Err(format!(
                "{} cannot use {} connections",
                target.system.name(),
                target.connections
            )
            .into());
        }
        let mut server = ServerProcess::spawn(target.system)?;
        for &payload in &plan.payloads {
            for &concurrency in &plan.concurrencies {
                let point = Point {
                    payload,
                    concurrency,
                    warmup: plan.warmup,
                    duration: plan.duration,
                };
                eprintln!(
                    "[{}/{total}] {} x{} conn, {payload} B, concurrency {concurrency}",
                    rows.len() + 1,
                    target.label(),
                    target.connections,
                );
                let measured = measure(*target, &mut server, &point)?;
                if measured.errors > 0 {
                    eprintln!(
                        "  warning: {} failed calls, first: {}",
                        measured.errors,
                        measured.first_error.as_deref().unwrap_or("?")
                    );
                }
                let mut row = Row::new(target.system, target.connections, &point, &measured);
                row.system = target.label();
                eprintln!(
                    "  {:.0} qps, p50 {:.1} us, p99 {:.1} us, {:.2} cpu ms/1k, \
                     allocs/call client {:.2} server {:.2}",
                    row.qps,
                    row.p50_us,
                    row.p99_us,
                    row.cpu_ms_per_1k,
                    row.client_allocs_per_call,
                    row.server_allocs_per_call
                );
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One point on a fresh client runtime, so no state carries over between points.
fn measure(
    target: Target,
    server: &mut ServerProcess,
    point: &Point,
) -> Result<load::Measured, BenchError> {
    let addr = server.addr();
    let mut server_usage = || server.usage();
    drive_point(target, addr, point, &mut server_usage)
}

/// Load against a server started elsewhere (for profiling); prints what it measured. The
/// server's usage is unknown here, so only the client's allocations are shown (appended last,
/// after the fields scripts already parse).
pub fn drive(target: Target, addr: SocketAddr, point: &Point) -> Result<(), BenchError> {
    let measured = drive_point(target, addr, point, &mut || Ok(Usage::default()))?;
    println!(
        "{} calls in {:.3} s: {:.0} qps, p50 {:.1} us, p99 {:.1} us, client cpu {:.3} s, \
         {} errors, client allocs/call {:.2}",
        measured.calls,
        measured.elapsed.as_secs_f64(),
        measured.qps(),
        measured.quantile_us(0.5),
        measured.quantile_us(0.99),
        measured.client_cpu.total().as_secs_f64(),
        measured.errors,
        measured.allocs_per_call_client()
    );
    Ok(())
}

fn drive_point(
    target: Target,
    addr: SocketAddr,
    point: &Point,
    server_usage: &mut dyn FnMut() -> Result<Usage, BenchError>,
) -> Result<load::Measured, BenchError> {
    let runtime = client_runtime()?;
    let mut server_usage = server_usage;
    let measured = runtime.block_on(async {
        match target.system {
            System::Raw => {
                let client = systems::raw::connect(addr, target.connections).await?;
                load::run(client, point, &mut server_usage).await
            }
            System::Rpc | System::RpcMetrics => {
                let client = systems::rpc::connect(addr, target.connections, target.codec).await?;
                load::run(client, point, &mut server_usage).await
            }
            System::RpcMeta => {
                let client = systems::rpc::connect(addr, target.connections, target.codec).await?;
                load::run(client.with_metadata(), point, &mut server_usage).await
            }
            System::RpcTls => {
                let client =
                    systems::rpc_tls::connect(addr, target.connections, target.codec).await?;
                load::run(client, point, &mut server_usage).await
            }
            System::Tarpc => {
                let client = systems::tarpc::connect(addr).await?;
                load::run(client, point, &mut server_usage).await
            }
            System::Tonic => {
                let client = systems::tonic::connect(addr).await?;
                load::run(client, point, &mut server_usage).await
            }
            System::TonicTls => {
                let client = systems::tonic::connect_tls(addr).await?;
                load::run(client, point, &mut server_usage).await
            }
            #[cfg(feature = "volo")]
            System::Volo => {
                // A clone keeps the connection open for the count after the load.
                let client = systems::volo::connect(addr).await?;
                let measured = load::run(client.clone(), point, &mut server_usage).await?;
                systems::volo::expect_one_connection(addr)?;
                Ok(measured)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    measured
}

fn client_runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Calls per system in the smoke check.
const SMOKE_CALLS: usize = 24;

/// The smoke check: every system's server answers a handful of echo calls. Returns the
/// systems (with connection counts) that failed.
pub fn smoke(targets: &[Target]) -> Result<Vec<String>, BenchError> {
    let mut failed = Vec::new();
    for target in targets {
        let label = format!("{} x{} conn", target.label(), target.connections);
        match smoke_one(*target) {
            Ok(()) => println!("smoke: {label}: {SMOKE_CALLS}/{SMOKE_CALLS} echoes ok"),
            Err(e) => {
                println!("smoke: {label}: FAILED: {e}");
                failed.push(label);
            }
        }
    }
    Ok(failed)
}

fn smoke_one(target: Target) -> Result<(), BenchError> {
    let mut server = ServerProcess::spawn(target.system)?;
    server.usage()?;
    let addr = server.addr();
    let runtime = client_runtime()?;
    let result = runtime.block_on(async {
        match target.system {
            System::Raw => {
                smoke_calls(systems::raw::connect(addr, target.connections).await?).await
            }
            System::Rpc | System::RpcMetrics => {
                smoke_calls(systems::rpc::connect(addr, target.connections, target.codec).await?)
                    .await
            }
            System::RpcMeta => {
                let client = systems::rpc::connect(addr, target.connections, target.codec).await?;
                smoke_calls(client.with_metadata()).await
            }
            System::RpcTls => {
                smoke_calls(
                    systems::rpc_tls::connect(addr, target.connections, target.codec).await?,
                )
                .await
            }
            System::Tarpc => smoke_calls(systems::tarpc::connect(addr).await?).await,
            System::Tonic => smoke_calls(systems::tonic::connect(addr).await?).await,
            System::TonicTls => smoke_calls(systems::tonic::connect_tls(addr).await?).await,
            #[cfg(feature = "volo")]
            System::Volo => {
                let client = systems::volo::connect(addr).await?;
                smoke_calls(client.clone()).await?;
                systems::volo::expect_one_connection(addr)
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Four callers, `SMOKE_CALLS` calls in all, payloads of several sizes; each reply must have
/// the request's length.
async fn smoke_calls<C: EchoClient>(client: C) -> Result<(), BenchError> {
    let mut tasks = Vec::new();
    for caller in 0..4 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for call in 0..SMOKE_CALLS / 4 {
                let size = [0, 1, 128, 1024, 16 * 1024, 100_000][(caller + call) % 6];
                let payload = Bytes::from(vec![7u8; size]);
                let call = client.echo(&payload);
                let len = tokio::time::timeout(Duration::from_secs(5), call)
                    .await
                    .map_err(|_| "no reply within 5 s")??;
                if len != size {
                    return Err(format!("reply of {len} bytes to a {size} byte request").into());
                }
            }
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
