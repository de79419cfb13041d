//! `example-provider`: serves `example.Greeter` and `example.Calculator` on one port, and
//! registers them in a registry unless `--registry none`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use example_provider::{CalculatorServer, ExampleProvider, GreeterServer};
use rpc_core::Server;

#[derive(Parser, Debug)]
#[command(version, about = "Serves the example Greeter and Calculator services")]
struct Args {
    /// Address to listen on; port 0 picks a free port, which is printed.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Registry URL (etcd://, zookeeper://, memory://), or `none` to skip registration.
    #[arg(long, env = "RPC_REGISTRY", default_value = "etcd://127.0.0.1:2379")]
    registry: String,
    /// Host that consumers should connect to (default: the listen IP).
    #[arg(long)]
    advertise_host: Option<String>,
    /// Weight published in the registry.
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// Seconds between deregistering and closing, so consumers stop calling first.
    #[arg(long, default_value_t = 1.0)]
    propagation_grace: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("example-provider: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let provider = ExampleProvider::default();

    let grace = std::time::Duration::try_from_secs_f64(args.propagation_grace)
        .map_err(|_| format!("bad --propagation-grace {}: expected seconds", args.propagation_grace))?;
    let mut builder = Server::builder()
        .bind(args.listen.clone())
        .serve(GreeterServer::new(provider.clone()))
        .serve(CalculatorServer::new(provider.clone()))
        .weight(args.weight)
        .propagation_grace(grace);
    if let Some(host) = &args.advertise_host {
        builder = builder.advertise_host(host.clone());
    }
    let registry = if args.registry == "none" {
        None
    } else {
        let registry = rpc_registry::connect(&args.registry)
            .await
            .map_err(|e| e.to_string())?;
        builder = builder.registry(Arc::clone(&registry));
        Some(registry)
    };
    let server = builder.start().await.map_err(|e| e.to_string())?;
    let bound = server.local_addr();
    let host = args
        .advertise_host
        .clone()
        .unwrap_or_else(|| bound.ip().to_string());
    provider.set_address(format!("{host}:{}", bound.port()));
    println!("example-provider listening on {}", server.local_addr());
    let result = server.run_until_signal().await.map_err(|e| e.to_string());
    if let Some(registry) = registry {
        if let Err(e) = registry.shutdown().await {
            tracing::warn!(error = %e, "registry shutdown failed");
        }
    }
    result
}
