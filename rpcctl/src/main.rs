//! `rpcctl`: look into a registry and talk to providers from the command line.
//!
//! ```text
//! rpcctl --registry etcd://127.0.0.1:2379 list
//! rpcctl --registry etcd://127.0.0.1:2379 show example.Greeter:1.0.0
//! rpcctl --registry etcd://127.0.0.1:2379 watch [example.Greeter:1.0.0]
//! rpcctl ping 127.0.0.1:9101
//! rpcctl --registry etcd://127.0.0.1:2379 call example.Greeter:1.0.0 hello '["bob"]'
//! rpcctl --registry etcd://127.0.0.1:2379 disable example.Greeter:1.0.0 10.0.0.7:9101
//! rpcctl --registry etcd://127.0.0.1:2379 route set example.Greeter:1.0.0 --file rules.json
//! rpcctl --registry etcd://127.0.0.1:2379 route explain example.Greeter:1.0.0 --tag gray
//! rpcctl --registry etcd://127.0.0.1:2379 console --listen 127.0.0.1:8080
//! ```
//!
//! `--registry` falls back to `RPC_REGISTRY`; credentials and TLS come from the URL or, as
//! for a provider, from `RPC_REGISTRY_USERNAME`, `RPC_REGISTRY_PASSWORD(_FILE)` and
//! `RPC_REGISTRY_TLS_*` (passwords are shown as `***`). `--json` gives machine output for
//! every command. Errors print `rpcctl: <message>` on stderr and exit 1.

mod commands;
mod console;
mod error;
mod output;
mod security;
mod spinner;

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use rpc_core::ServiceKey;

use crate::commands::governance::{ConfigCommand, Edit};
use crate::commands::route::{Question, RouteCommand};
use crate::commands::{
    admin, call, governance, list, parse_key, ping, register, route, show, watch, Target,
};
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(
    name = "rpcctl",
    version,
    about = "Look into an rpc registry and talk to providers",
    arg_required_else_help = true
)]
struct Cli {
    /// The registry URL, `etcd://...`, `zookeeper://...` or `redis://...`.
    #[arg(
        long,
        env = "RPC_REGISTRY",
        global = true,
        value_name = "URL",
        help = "Registry URL: etcd://host:port[,host:port...][/root][?options] or \
                zookeeper://host:port[,...] (alias zk://) or \
                redis://[user:password@]host:port[/db][?root=...]"
    )]
    registry: Option<String>,
    /// Print JSON for scripts instead of tables and lines for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    security: security::Security,
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// List registered services with their versions and instance counts.
    List,
    /// Show the instances of one service version: address, weight, age, metadata, and on
    /// etcd the lease TTL left.
    Show {
        /// The service key, NAME:VERSION, e.g. example.Greeter:1.0.0.
        service: String,
    },
    /// Print instances joining, leaving and changing as it happens, until Ctrl-C.
    ///
    /// The instances there at the start are printed first as `present`; they do not count
    /// towards --count.
    Watch {
        /// The service key to follow; every service when left out.
        service: Option<String>,
        /// Stop after this many join, leave and update events.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Stop after this many seconds; with --count, not reaching it by then is an error.
        #[arg(long, value_name = "SECS", value_parser = seconds)]
        timeout: Option<Duration>,
    },
    /// Send protocol pings to one provider and print the round-trip times.
    Ping {
        /// The provider's HOST:PORT.
        address: String,
        /// Pings to send.
        #[arg(long, short = 'c', default_value_t = 4,
              value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Seconds between pings.
        #[arg(long, short = 'i', value_name = "SECS", default_value = "1", value_parser = seconds)]
        interval: Duration,
        /// Seconds to wait for each pong, connecting included.
        #[arg(long, value_name = "SECS", default_value = "3", value_parser = seconds)]
        timeout: Duration,
    },
    /// Make one call through the registry with the JSON codec and print the JSON result.
    Call {
        /// The service key, NAME:VERSION, e.g. example.Greeter:1.0.0.
        service: String,
        /// The method name, e.g. hello.
        method: String,
        /// The arguments as a JSON array.
        #[arg(
            default_value = "[]",
            allow_hyphen_values = true,
            help = "The arguments as a JSON array: '[\"bob\"]' for one argument, \
                    '[2,3]' for two, '[]' for none"
        )]
        args: String,
        /// Seconds the whole call may take, discovery and retries included.
        #[arg(long, value_name = "SECS", default_value = "10", value_parser = seconds)]
        deadline: Duration,
        /// Let a timed-out attempt be retried on another provider (only for methods that
        /// are safe to run twice).
        #[arg(long)]
        idempotent: bool,
    },
    /// Stop every consumer from calling one provider; its node stays registered.
    Disable {
        /// The service key, NAME:VERSION.
        service: String,
        /// The provider's HOST:PORT as registered.
        address: String,
    },
    /// Let consumers call a disabled provider again.
    Enable {
        /// The service key, NAME:VERSION.
        service: String,
        /// The provider's HOST:PORT as registered.
        address: String,
    },
    /// Override one provider's weight for weighted balancers.
    Weight {
        /// The service key, NAME:VERSION.
        service: String,
        /// The provider's HOST:PORT as registered.
        address: String,
        /// The weight, 1 to 1000000.
        #[arg(value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        weight: u32,
    },
    /// Take a provider out of rotation through its admin endpoint: it deregisters every
    /// service and keeps serving (readiness turns 503).
    Offline {
        /// The admin endpoint's HOST:PORT (the provider's `rpc.admin` metadata).
        admin: String,
    },
    /// Put a provider taken offline back into rotation: it registers again.
    Online {
        /// The admin endpoint's HOST:PORT.
        admin: String,
    },
    /// Calls per service, method and status, with mean latency, from a process's metrics.
    Stats {
        /// The admin endpoint's HOST:PORT.
        admin: String,
    },
    /// Register a process that cannot register itself (the registrar pattern): hold its node
    /// with this tool's own lease or session while a health check passes, remove it after
    /// --misses failed checks in a row, put it back when the check passes; Ctrl-C or SIGTERM
    /// deregisters.
    Register(register::RegisterArgs),
    /// Per-service call settings in the overrides document.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Routing rules: tag routing and condition rules.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Serve a web console: services, providers with live traffic, disable/enable, weights,
    /// overrides and routes, and a live feed of the registry (docs/console.md).
    Console(console::ConsoleArgs),
}

/// Parses a positive number of seconds, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a positive number of seconds (e.g. 2 or 0.5)");
    let secs: f64 = text.trim().parse().map_err(|_| bad())?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(bad());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,zookeeper_client=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) | Err(CliError::StdoutClosed) => ExitCode::SUCCESS,
        Err(CliError::Failed(message)) => {
            eprintln!("rpcctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout with exit 0; a usage error prints `rpcctl: <message>` with
/// clap's hints and exits 1.
fn usage(error: clap::Error) -> ExitCode {
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::FAILURE
        }
        _ => {
            let text = error.render().to_string();
            eprint!("rpcctl: {}", text.strip_prefix("error: ").unwrap_or(&text));
            ExitCode::FAILURE
        }
    }
}

/// A command with its input checked: keys parsed, arguments encoded.
enum Job {
    /// `ping`, which needs no registry.
    Ping(String, ping::Settings),
    /// `offline` / `online` (`true`) / `stats` (`None`) on an admin endpoint.
    Admin(String, Option<bool>),
    /// A command that reads the registry.
    Registry(RegistryJob),
}

/// The commands that open the registry.
enum RegistryJob {
    List,
    Show(ServiceKey),
    Watch(Option<ServiceKey>, watch::Limits),
    Call {
        key: ServiceKey,
        method: String,
        body: Bytes,
        settings: call::Settings,
    },
    Edit(ServiceKey, Edit),
    Register(rpc_core::ServiceInstance, register::Settings),
    ConfigGet(ServiceKey),
    RouteGet(ServiceKey),
    RouteSet(ServiceKey, rpc_core::cluster::governance::Routes),
    RouteDelete(ServiceKey),
    Explain(ServiceKey, Question),
    Console(console::Settings),
}

impl Job {
    /// Checks what the user typed, before anything touches the network, so that a typo is
    /// reported as such even when the registry is down.
    fn from_command(command: Command) -> CliResult<Job> {
        Ok(match command {
            Command::List => Job::Registry(RegistryJob::List),
            Command::Show { service } => Job::Registry(RegistryJob::Show(parse_key(&service)?)),
            Command::Watch {
                service,
                count,
                timeout,
            } => Job::Registry(RegistryJob::Watch(
                service.as_deref().map(parse_key).transpose()?,
                watch::Limits { count, timeout },
            )),
            Command::Ping {
                address,
                count,
                interval,
                timeout,
            } => Job::Ping(
                address,
                ping::Settings {
                    count,
                    interval,
                    timeout,
                },
            ),
            Command::Call {
                service,
                method,
                args,
                deadline,
                idempotent,
            } => {
                let key = parse_key(&service)?;
                if method.is_empty() {
                    return Err(CliError::new("empty method name"));
                }
                Job::Registry(RegistryJob::Call {
                    key,
                    method,
                    body: call::encode_args(&args)?,
                    settings: call::Settings {
                        deadline,
                        idempotent,
                    },
                })
            }
            Command::Register(args) => {
                let (instance, settings) = args.check()?;
                Job::Registry(RegistryJob::Register(instance, settings))
            }
            Command::Offline { admin } => Job::Admin(admin, Some(false)),
            Command::Online { admin } => Job::Admin(admin, Some(true)),
            Command::Stats { admin } => Job::Admin(admin, None),
            Command::Disable { service, address } => {
                let edit = Edit::Disabled(address, true);
                Job::Registry(RegistryJob::Edit(parse_key(&service)?, edit))
            }
            Command::Enable { service, address } => {
                let edit = Edit::Disabled(address, false);
                Job::Registry(RegistryJob::Edit(parse_key(&service)?, edit))
            }
            Command::Weight {
                service,
                address,
                weight,
            } => {
                let edit = Edit::Weight(address, weight);
                Job::Registry(RegistryJob::Edit(parse_key(&service)?, edit))
            }
            Command::Config(ConfigCommand::Get { service }) => {
                Job::Registry(RegistryJob::ConfigGet(parse_key(&service)?))
            }
            Command::Config(ConfigCommand::Set { service, settings }) => Job::Registry(
                RegistryJob::Edit(parse_key(&service)?, Edit::settings(&settings)?),
            ),
            Command::Route(RouteCommand::Get { service }) => {
                Job::Registry(RegistryJob::RouteGet(parse_key(&service)?))
            }
            Command::Route(RouteCommand::Set { service, file }) => {
                let key = parse_key(&service)?;
                Job::Registry(RegistryJob::RouteSet(
                    key,
                    route::read_document(file.as_ref())?,
                ))
            }
            Command::Route(RouteCommand::Delete { service }) => {
                Job::Registry(RegistryJob::RouteDelete(parse_key(&service)?))
            }
            Command::Console(args) => Job::Registry(RegistryJob::Console(args.check()?)),
            Command::Route(RouteCommand::Explain {
                service,
                method,
                tag,
                caller,
            }) => Job::Registry(RegistryJob::Explain(
                parse_key(&service)?,
                Question {
                    method,
                    tag,
                    caller,
                },
            )),
        })
    }
}

/// Runs the chosen command.
async fn run(cli: Cli) -> CliResult {
    let out = Output::new(cli.json);
    let job = match Job::from_command(cli.command)? {
        Job::Ping(address, settings) => {
            let builder = cli.security.client_builder()?;
            return ping::run(out, &address, settings, builder).await;
        }
        Job::Admin(address, Some(online)) => return admin::transition(out, &address, online).await,
        Job::Admin(address, None) => return admin::stats(out, &address).await,
        Job::Registry(job) => job,
    };
    let target = Target::open(cli.registry.as_deref()).await?;
    let result = match job {
        RegistryJob::List => list::run(&target, out).await,
        RegistryJob::Show(key) => show::run(&target, out, &key).await,
        RegistryJob::Watch(key, limits) => watch::run(&target, out, key.as_ref(), limits).await,
        RegistryJob::Call {
            key,
            method,
            body,
            settings,
        } => match cli.security.client_builder() {
            Ok(builder) => call::run(&target, out, &key, &method, body, settings, builder).await,
            Err(e) => Err(e),
        },
        RegistryJob::Edit(key, edit) => governance::edit(&target, out, &key, edit).await,
        RegistryJob::Register(instance, settings) => {
            register::run(&target, out, instance, settings).await
        }
        RegistryJob::ConfigGet(key) => governance::get(&target, out, &key).await,
        RegistryJob::RouteGet(key) => route::get(&target, out, &key).await,
        RegistryJob::RouteSet(key, routes) => route::set(&target, out, &key, &routes).await,
        RegistryJob::RouteDelete(key) => route::delete(&target, out, &key).await,
        RegistryJob::Explain(key, question) => route::explain(&target, out, &key, &question).await,
        RegistryJob::Console(settings) => console::run(&target, out, settings).await,
    };
    target.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(seconds("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["0", "-1", "abc", "NaN", "inf", ""] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
