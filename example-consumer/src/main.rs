//! `example-consumer`: calls the example services, directly or through a registry, prints what
//! happens, and exits 1 if any call failed.

mod client_metrics;
mod report;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::admin::AdminEndpoint;
use rpc_core::{Client, Codec, RpcConfig};

use client_metrics::ClientMetrics;
use report::Report;

#[derive(Parser, Debug, Clone)]
#[command(version, about = "Calls the example Greeter and Calculator services")]
struct Args {
    /// Call one provider at this address instead of discovering providers.
    #[arg(long)]
    connect: Option<String>,
    /// Registry URL (etcd://, zookeeper://, redis://, nacos:// with the `nacos` feature, memory://), or `none` (then --connect is needed)
    /// [default: etcd://127.0.0.1:2379, or registry.url / RPC_REGISTRY].
    #[arg(long)]
    registry: Option<String>,
    /// Settings file (rpc.toml); RPC_* environment variables override it, flags override both.
    #[arg(long, env = "RPC_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Number of load iterations (each: hello, add, whoami); ignored with --duration.
    #[arg(long, default_value_t = 10)]
    calls: u64,
    /// Run the load for this many seconds instead of a number of calls.
    #[arg(long)]
    duration: Option<f64>,
    /// Calls kept in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Body codec: bincode, json or postcard [default: bincode, or client.codec].
    #[arg(long)]
    codec: Option<String>,
    /// Per-call deadline in milliseconds, retries included [default: 10000, or
    /// client.deadline_ms].
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Load balancer (round-robin, random, weighted-random, weighted-round-robin,
    /// consistent-hash, least-loaded).
    #[arg(long)]
    balancer: Option<String>,
    /// Fault policy (failfast, failover, failsafe, failback).
    #[arg(long)]
    policy: Option<String>,
    /// Print one line per second with calls/s and the providers that answered.
    #[arg(long)]
    progress: bool,
    /// Skip the one-off demonstration of every method and only run the load.
    #[arg(long)]
    quiet: bool,
    /// Admin HTTP endpoint, HOST:PORT: /metrics, /health/live, /health/ready, /services
    /// [default: off, or server.admin / RPC_ADMIN].
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// Print a line whenever the registry's list of Greeter providers changes.
    #[arg(long)]
    show_membership: bool,
    #[command(flatten)]
    security: example_provider::flags::ConsumerSecurity,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,zookeeper_client=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("example-consumer: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn build_client(
    args: &Args,
    metrics: Option<&ClientMetrics>,
) -> Result<(Client, Option<AdminEndpoint>), String> {
    let mut config = RpcConfig::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    let admin = match args.admin.as_ref().or(config.admin.as_ref()) {
        Some(addr) => Some(
            AdminEndpoint::start(addr, metrics.map(ClientMetrics::handle))
                .await
                .map_err(|e| format!("cannot start the admin endpoint on {addr}: {e}"))?,
        ),
        None => None,
    };
    if let Some(codec) = &args.codec {
        config.codec = Codec::from_name(codec)
            .ok_or_else(|| format!("bad --codec {codec:?}: expected bincode, json or postcard"))?;
    }
    if let Some(ms) = args.deadline_ms {
        config.deadline = Some(Duration::from_millis(ms));
    }
    if let Some(registry) = &args.registry {
        config.registry = (registry != "none").then(|| registry.as_str().into());
    }
    args.security.apply(&mut config)?;
    let mut cluster = config.cluster_config();
    if let Some(name) = &args.balancer {
        cluster = cluster.balancer_named(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.policy {
        cluster = cluster.policy_named(name).map_err(|e| e.to_string())?;
    }
    let builder = config.client_builder().cluster(cluster);
    if let Some(addr) = &args.connect {
        let client = builder.connect(addr).await.map_err(|e| e.to_string())?;
        return Ok((client, admin));
    }
    let registry = rpc_registry::connect_config(&config)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("--registry none needs --connect HOST:PORT")?;
    Ok((builder.discover(registry), admin))
}

async fn run(args: Args) -> Result<u64, String> {
    let metrics = ClientMetrics::install();
    let (client, admin) = build_client(&args, metrics.as_ref()).await?;
    if let Some(admin) = &admin {
        admin.attach_client(client.clone());
        eprintln!("example-consumer admin on {}", admin.local_addr());
    }
    let greeter = GreeterClient::new(client.clone());
    let calculator = CalculatorClient::new(client);
    let report = Arc::new(Report::new(metrics));

    if !args.quiet {
        show_every_method(&greeter, &calculator, &report).await;
    }

    let membership = args
        .show_membership
        .then(|| tokio::spawn(report::membership(greeter.client().clone())));
    let started = Instant::now();
    let stop_at = args
        .duration
        .map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (greeter, calculator, report, next) = (
            greeter.clone(),
            calculator.clone(),
            Arc::clone(&report),
            Arc::clone(&next),
        );
        let total = args.calls;
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match stop_at {
                    Some(at) if Instant::now() >= at => break,
                    None if i >= total => break,
                    _ => {}
                }
                let t = Instant::now();
                let hello = greeter.hello(format!("user-{i}")).await;
                report.record("Greeter.hello", t.elapsed(), hello.err());
                let t = Instant::now();
                let sum = calculator.add(i as i64, 1).await;
                let wrong = matches!(&sum, Ok(v) if *v != i as i64 + 1);
                report.record("Calculator.add", t.elapsed(), sum.err());
                if wrong {
                    report.record_wrong("Calculator.add");
                }
                let t = Instant::now();
                match greeter.whoami().await {
                    Ok(provider) => report.record_provider(&provider, t.elapsed()),
                    Err(e) => report.record("Greeter.whoami", t.elapsed(), Some(e)),
                }
            }
        }));
    }
    let ticker = args
        .progress
        .then(|| tokio::spawn(report::progress(Arc::clone(&report))));
    for worker in workers {
        if let Err(e) = worker.await {
            return Err(format!("a worker panicked: {e}"));
        }
    }
    for task in [ticker, membership].into_iter().flatten() {
        task.abort();
    }
    report.print_summary(started.elapsed());
    Ok(report.failures())
}

async fn show_every_method(
    greeter: &GreeterClient,
    calculator: &CalculatorClient,
    report: &Report,
) {
    macro_rules! show {
        ($label:expr, $call:expr) => {{
            let t = Instant::now();
            let result = $call.await;
            match &result {
                Ok(value) => println!("{:<28} -> {:?}", $label, value),
                Err(e) => println!("{:<28} -> FAILED: {e}", $label),
            }
            report.record($label, t.elapsed(), result.err());
        }};
    }
    show!("Greeter.hello(\"world\")", greeter.hello("world".into()));
    show!("Greeter.whoami()", greeter.whoami());
    show!("Calculator.add(2, 3)", calculator.add(2, 3));
    show!("Calculator.divide(10, 2)", calculator.divide(10, 2));
    show!("Calculator.divide(1, 0)", calculator.divide(1, 0));
    show!("Calculator.echo([1, 2, 3])", calculator.echo(vec![1, 2, 3]));
    show!("Calculator.sleep(10)", calculator.sleep(10));
}
