//! `rpc-bench`: the framework measured side by side with tarpc, tonic and a raw framed echo,
//! plus registry figures with real etcd and ZooKeeper. See BENCHMARKS.md.
//!
//! ```text
//! rpc-bench                      # the full echo run (under 10 minutes)
//! rpc-bench --quick              # a reduced run (under a minute)
//! rpc-bench --smoke              # every system answers a few calls (no timing)
//! rpc-bench --quick --systems rpc --codec bincode,json,postcard   # per-codec sizes and points
//! rpc-bench --quick --systems rpc,rpc+tls,tonic,tonic+tls          # what TLS costs, one run
//! rpc-bench --json out.json --chart out.png
//! rpc-bench registry             # registry figures, etcd and ZooKeeper
//! ```

mod alloc_count;
mod chart;
mod child;
mod codecs;
mod cpu;
mod governance_bench;
mod load;
mod registry_bench;
mod registry_report;
mod registry_servers;
mod report;
mod run;
mod systems;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use rpc_core::Codec;
use run::Plan;
use systems::{BenchError, System};

/// Benchmarks the rpc framework against tarpc, tonic and a raw framed echo.
#[derive(Debug, Parser)]
#[command(name = "rpc-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    echo: EchoArgs,
}

#[derive(Debug, Args)]
struct EchoArgs {
    /// The reduced run: 128 B at concurrency 1, 64 and 256, short windows (under a minute).
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// No measuring: each system answers a handful of echo calls; exits 1 if one does not.
    #[arg(long)]
    smoke: bool,
    /// Writes the result rows as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draws QPS and p99 by concurrency to this PNG file.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Systems to run, comma separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    systems: Vec<System>,
    /// Payload sizes in bytes, comma separated (overrides the plan's).
    #[arg(long, value_delimiter = ',')]
    payloads: Vec<usize>,
    /// Concurrencies, comma separated (overrides the plan's).
    #[arg(long, value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Body codecs for rpc, comma separated: bincode, json, postcard (default: the client's
    /// default, unlabelled). With this flag the run starts with each codec's encoded sizes and
    /// encode/decode times.
    #[arg(long, value_delimiter = ',', value_parser = parse_codec)]
    codec: Vec<Codec>,
    /// Connection counts for rpc, comma separated (default 1,4).
    #[arg(long, value_delimiter = ',')]
    rpc_connections: Vec<usize>,
    /// Warm-up seconds per point (overrides the plan's).
    #[arg(long)]
    warmup: Option<f64>,
    /// Measured seconds per point (overrides the plan's).
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one system's echo server (the benchmark starts these itself).
    #[command(hide = true)]
    Serve {
        /// Which server.
        #[arg(long, value_enum)]
        system: System,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Drives closed-loop load at a server that is already running, for profiling it
    /// (`perf record -p`, or the server under `valgrind --tool=callgrind`).
    Drive {
        /// Which system the server is.
        #[arg(long, value_enum)]
        system: System,
        /// The server's address.
        #[arg(long)]
        connect: std::net::SocketAddr,
        /// Payload bytes.
        #[arg(long, default_value_t = 128)]
        payload: usize,
        /// Closed-loop callers.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Client connections (rpc and raw).
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Redraws the chart from a JSON result file.
    Chart {
        /// Result rows written by `--json`.
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
        /// The PNG to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Registry figures with real etcd and ZooKeeper servers started for the run.
    Registry(registry_bench::RegistryArgs),
    /// A provider that registers one instance and waits to be killed (used by `registry`).
    #[command(hide = true)]
    RegistryProvider(registry_bench::ProviderArgs),
    /// A new consumer that discovers and watches every service (used by `registry`).
    #[command(hide = true)]
    RegistryDiscover(registry_bench::DiscoverArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve { system, listen }) => child::serve_main(system, &listen),
        Some(Command::Drive {
            system,
            connect,
            payload,
            concurrency,
            connections,
            duration,
        }) => Duration::try_from_secs_f64(duration)
            .map_err(BenchError::from)
            .and_then(|duration| {
                run::drive(
                    run::Target {
                        system,
                        connections,
                        codec: None,
                    },
                    connect,
                    &load::Point {
                        payload,
                        concurrency,
                        warmup: Duration::ZERO,
                        duration,
                    },
                )
            }),
        Some(Command::Chart { json, out }) => report::read_json(&json)
            .and_then(|rows| chart::draw(&rows, &out, "rpc-bench: echo over loopback")),
        Some(Command::Registry(args)) => registry_bench::main(&args),
        Some(Command::RegistryProvider(args)) => registry_bench::provider_main(&args),
        Some(Command::RegistryDiscover(args)) => registry_bench::discover_main(&args),
        None => {
            let result = echo_main(&cli.echo);
            systems::rpc_tls::remove_own_certs();
            result
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_codec(name: &str) -> Result<Codec, String> {
    Codec::from_name(name).ok_or_else(|| format!("{name:?} is not bincode, json or postcard"))
}

fn echo_main(args: &EchoArgs) -> Result<(), BenchError> {
    let systems: Vec<System> = if args.systems.is_empty() && args.smoke {
        // The smoke check covers the opt-in variants too.
        <System as clap::ValueEnum>::value_variants().to_vec()
    } else if args.systems.is_empty() {
        System::ALL.to_vec()
    } else {
        args.systems.clone()
    };
    let rpc_connections = if args.rpc_connections.is_empty() {
        vec![1, 4]
    } else {
        args.rpc_connections.clone()
    };
    if args.smoke {
        let targets = Plan::default_targets(&systems, &rpc_connections, &args.codec);
        let failed = run::smoke(&targets)?;
        if !failed.is_empty() {
            return Err(format!("smoke check failed for {}", failed.join(", ")).into());
        }
        println!("smoke: every system answered");
        return Ok(());
    }
    let mut plan = if args.quick {
        Plan::quick(&systems)
    } else {
        Plan::full(&systems)
    };
    plan.targets = Plan::default_targets(&systems, &rpc_connections, &args.codec);
    if !args.codec.is_empty() {
        println!("{}", codecs::table(&args.codec)?);
    }
    if !args.payloads.is_empty() {
        plan.payloads = args.payloads.clone();
    }
    if !args.concurrency.is_empty() {
        plan.concurrencies = args.concurrency.clone();
    }
    if let Some(s) = args.warmup {
        plan.warmup = Duration::try_from_secs_f64(s)?;
    }
    if let Some(s) = args.duration {
        plan.duration = Duration::try_from_secs_f64(s)?;
    }
    eprintln!(
        "rpc-bench: {} points, {:?} warm-up + {:?} measured each",
        plan.points(),
        plan.warmup,
        plan.duration
    );
    let rows = run::execute(&plan)?;
    println!("{}", report::table(&rows));
    if let Some(path) = &args.json {
        report::write_json(&rows, path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.chart {
        let title = format!(
            "rpc-bench{}: echo over loopback, {} s per point",
            if args.quick { " --quick" } else { "" },
            plan.duration.as_secs_f64()
        );
        chart::draw(&rows, path, &title)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
