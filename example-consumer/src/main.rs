//! `example-consumer`: calls the example services, directly or through a registry, prints what
//! happens, and exits 1 if any call failed.

mod report;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::cluster::ClusterConfig;
use rpc_core::{Client, Codec};

use report::Report;

#[derive(Parser, Debug, Clone)]
#[command(version, about = "Calls the example Greeter and Calculator services")]
struct Args {
    /// Call one provider at this address instead of discovering providers.
    #[arg(long)]
    connect: Option<String>,
    /// Registry URL (etcd://, zookeeper://, memory://), or `none` (then --connect is needed).
    #[arg(long, env = "RPC_REGISTRY", default_value = "etcd://127.0.0.1:2379")]
    registry: String,
    /// Number of load iterations (each: hello, add, whoami); ignored with --duration.
    #[arg(long, default_value_t = 10)]
    calls: u64,
    /// Run the load for this many seconds instead of a number of calls.
    #[arg(long)]
    duration: Option<f64>,
    /// Calls kept in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Body codec: bincode or json.
    #[arg(long, default_value = "bincode")]
    codec: String,
    /// Per-call deadline in milliseconds, retries included.
    #[arg(long, default_value_t = 5000)]
    deadline_ms: u64,
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
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(failures) if failures == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("example-consumer: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn build_client(args: &Args) -> Result<Client, String> {
    let codec = match args.codec.as_str() {
        "bincode" => Codec::Bincode,
        "json" => Codec::Json,
        other => return Err(format!("bad --codec {other:?}: expected bincode or json")),
    };
    let builder = Client::builder()
        .codec(codec)
        .deadline(Some(Duration::from_millis(args.deadline_ms)));
    if let Some(addr) = &args.connect {
        return builder.connect(addr).await.map_err(|e| e.to_string());
    }
    if args.registry == "none" {
        return Err("--registry none needs --connect HOST:PORT".into());
    }
    let mut cluster = ClusterConfig::default();
    if let Some(name) = &args.balancer {
        cluster = cluster.balancer_named(name).map_err(|e| e.to_string())?;
    }
    if let Some(name) = &args.policy {
        cluster = cluster.policy_named(name).map_err(|e| e.to_string())?;
    }
    let registry = rpc_registry::connect(&args.registry)
        .await
        .map_err(|e| e.to_string())?;
    Ok(builder.cluster(cluster).discover(registry))
}

async fn run(args: Args) -> Result<u64, String> {
    let client = build_client(&args).await?;
    let greeter = GreeterClient::new(client.clone());
    let calculator = CalculatorClient::new(client);
    let report = Arc::new(Report::new());

    if !args.quiet {
        show_every_method(&greeter, &calculator, &report).await;
    }

    let started = Instant::now();
    let stop_at = args.duration.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
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
    let ticker = args.progress.then(|| tokio::spawn(report::progress(Arc::clone(&report))));
    for worker in workers {
        if let Err(e) = worker.await {
            return Err(format!("a worker panicked: {e}"));
        }
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    report.print_summary(started.elapsed());
    Ok(report.failures())
}

async fn show_every_method(greeter: &GreeterClient, calculator: &CalculatorClient, report: &Report) {
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
