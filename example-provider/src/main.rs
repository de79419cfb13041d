//! `example-provider`: serves `example.Greeter` and `example.Calculator` on one port, and
//! registers them in a registry unless `--registry none`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use example_provider::{
    CalculatorServer, ExampleProvider, ExampleRelay, GreeterServer, RelayServer,
};
use rpc_core::admin::{self, AdminEndpoint};
use rpc_core::RpcConfig;

#[derive(Parser, Debug)]
#[command(version, about = "Serves the example Greeter and Calculator services")]
struct Args {
    /// Address to listen on; port 0 picks a free port, which is printed
    /// [default: 127.0.0.1:0, or server.listen / RPC_LISTEN].
    #[arg(long)]
    listen: Option<String>,
    /// Registry URL (etcd://, zookeeper://, redis://, nacos:// with the `nacos` feature, memory://), or `none` to skip registration
    /// [default: etcd://127.0.0.1:2379, or registry.url / RPC_REGISTRY].
    #[arg(long)]
    registry: Option<String>,
    /// Settings file (rpc.toml); RPC_* environment variables override it, flags override both.
    #[arg(long, env = "RPC_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Address published for consumers to dial, HOST[:PORT] (the port defaults to the bound
    /// one) [default: the listen IP, or this host's primary non-loopback address when
    /// listening on all interfaces; or server.advertise / RPC_ADVERTISE].
    #[arg(long, alias = "advertise-host", value_name = "HOST[:PORT]")]
    advertise: Option<String>,
    /// Admin HTTP endpoint, HOST:PORT: /metrics, /health/live, /health/ready, /services,
    /// POST /offline and /online; published as `rpc.admin` [default: off, or server.admin /
    /// RPC_ADMIN].
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// Weight published in the registry.
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// Routing tag published in the registry (`rpc.tag` metadata): calls tagged the same are
    /// routed here, untagged calls are not (docs/governance.md).
    #[arg(long)]
    tag: Option<String>,
    /// Metadata label published with each instance, KEY=VALUE; repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_label)]
    meta: Vec<(String, String)>,
    /// Seconds between deregistering and closing, so consumers stop calling first
    /// [default: 1, or server.propagation_grace_ms].
    #[arg(long)]
    propagation_grace: Option<f64>,
    /// Serve only `example.Relay`, which forwards each greeting to an `example.Greeter`
    /// found through the same registry (the middle of a call chain).
    #[arg(long)]
    relay: bool,
    #[command(flatten)]
    security: example_provider::flags::ProviderSecurity,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,zookeeper_client=warn".into()),
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

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = RpcConfig::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(registry) = &args.registry {
        config.registry = (registry != "none").then(|| registry.as_str().into());
    }
    if let Some(advertise) = &args.advertise {
        config.advertise = Some(advertise.clone());
    }
    if let Some(secs) = args.propagation_grace {
        config.propagation_grace = std::time::Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("bad --propagation-grace {secs}: expected seconds"))?;
    }
    if let Some(admin) = &args.admin {
        config.admin = Some(admin.clone());
    }
    args.security.apply(&mut config);
    let admin = match &config.admin {
        Some(addr) => Some(
            AdminEndpoint::start_with_prometheus(addr)
                .await
                .map_err(|e| format!("cannot start the admin endpoint on {addr}: {e}"))?,
        ),
        None => None,
    };
    let provider = ExampleProvider::default();
    let registry = rpc_registry::connect_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let mut builder = config.server_builder().weight(args.weight);
    builder = if args.relay {
        let registry = registry
            .clone()
            .ok_or("--relay needs a registry to find greeters in")?;
        let downstream = config.client_builder().discover(registry);
        builder.serve(RelayServer::new(ExampleRelay::new(downstream)))
    } else {
        builder
            .serve(GreeterServer::new(provider.clone()))
            .serve(CalculatorServer::new(provider.clone()))
    };
    for (key, value) in args.meta {
        builder = builder.metadata(key, value);
    }
    if let Some(tag) = args.tag.filter(|t| !t.is_empty()) {
        builder = builder.metadata(rpc_core::cluster::governance::TAG_METADATA_KEY, tag);
    }
    if let Some(admin) = &admin {
        builder = builder.metadata(admin::METADATA_KEY, admin.local_addr().to_string());
    }
    if let Some(registry) = &registry {
        builder = builder.registry(Arc::clone(registry));
    }
    // Catch SIGTERM from here on, so a stop during start-up still deregisters cleanly.
    let signal = rpc_core::server::shutdown_signal();
    let server = builder.start().await.map_err(|e| e.to_string())?;
    provider.set_address(server.published_addr());
    println!("example-provider listening on {}", server.local_addr());
    println!("example-provider published as {}", server.published_addr());
    if let Some(admin) = &admin {
        admin.attach_server(server.control());
        println!("example-provider admin on {}", admin.local_addr());
    }
    let result = server.run_until(signal).await.map_err(|e| e.to_string());
    if let Some(registry) = registry {
        if let Err(e) = registry.shutdown().await {
            tracing::warn!(error = %e, "registry shutdown failed");
        }
    }
    result
}
