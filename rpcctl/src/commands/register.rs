//! `rpcctl register KEY HOST:PORT`: the registrar pattern. Registers a node for a process
//! that cannot register itself, holding it with this tool's own lease or session while a
//! health check passes; removes it after `--misses` failed checks in a row and puts it back
//! when the check passes again; deregisters on Ctrl-C or SIGTERM. If the tool itself dies,
//! the node expires with the lease's TTL (the session's timeout on ZooKeeper).

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::Method;
use rpc_core::{Client, ServiceInstance, ServiceKey};
use serde_json::json;
use tokio::net::TcpStream;

use super::Target;
use crate::error::{CliError, CliResult};
use crate::output::Output;

/// `rpcctl register`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The service key, NAME:VERSION.
    service: String,
    /// The process's HOST:PORT, published for consumers to dial.
    address: String,
    /// Weight published with the node.
    #[arg(long, default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    weight: u32,
    /// A metadata label, KEY=VALUE; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// The health check: tcp (connect), ping (a protocol ping) or
    /// http://HOST:PORT/PATH (a 2xx answer).
    #[arg(long, default_value = "tcp")]
    check: String,
    /// Seconds between checks; a check taking longer fails.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = crate::seconds)]
    interval: Duration,
    /// Failed checks in a row that remove the node.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    misses: u32,
}

impl RegisterArgs {
    /// Checks what the user typed: the instance to register and how to keep it.
    pub fn check(self) -> CliResult<(ServiceInstance, Settings)> {
        let key = super::parse_key(&self.service)?;
        let instance = instance(&key, &self.address, self.weight, &self.meta)?;
        let settings = Settings {
            check: Check::parse(&self.check)?,
            interval: self.interval,
            misses: self.misses,
        };
        Ok((instance, settings))
    }
}

/// How the registered process's health is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A TCP connection to the node's address is accepted.
    Tcp,
    /// The node's address answers a protocol ping (it speaks this framework's protocol).
    Ping,
    /// `GET http://HOST:PORT/PATH` answers 2xx; the `HOST:PORT` and the path.
    Http(String, String),
}

impl Check {
    /// Parses `tcp`, `ping` or `http://HOST:PORT/PATH`.
    pub fn parse(text: &str) -> CliResult<Check> {
        match text {
            "tcp" => Ok(Check::Tcp),
            "ping" => Ok(Check::Ping),
            _ => {
                let bad = || {
                    CliError::new(format!(
                        "bad --check {text:?}: expected tcp, ping or http://HOST:PORT/PATH"
                    ))
                };
                let rest = text.strip_prefix("http://").ok_or_else(bad)?;
                let (authority, path) = match rest.find('/') {
                    Some(at) => (&rest[..at], &rest[at..]),
                    None => (rest, "/"),
                };
                let port = authority.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
                if !matches!(port, Some(Ok(_))) {
                    return Err(bad());
                }
                Ok(Check::Http(authority.to_string(), path.to_string()))
            }
        }
    }
}

/// What to register and how to keep it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The health check.
    pub check: Check,
    /// Time between checks (and the longest one check may take).
    pub interval: Duration,
    /// Failed checks in a row that remove the node.
    pub misses: u32,
}

/// The instance `key` at `address` (`HOST:PORT`) with `weight` and `meta` (`KEY=VALUE`).
pub fn instance(
    key: &ServiceKey,
    address: &str,
    weight: u32,
    meta: &[String],
) -> CliResult<ServiceInstance> {
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok().filter(|p| *p > 0)?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| CliError::new(format!("bad address {address:?}: expected HOST:PORT")))?;
    let mut metadata = BTreeMap::new();
    for pair in meta {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| CliError::new(format!("bad --meta {pair:?}: expected KEY=VALUE")))?;
        metadata.insert(k.to_string(), v.to_string());
    }
    let mut instance = ServiceInstance::new(key, host, port);
    instance.weight = weight;
    instance.metadata = metadata;
    Ok(instance)
}

/// Keeps `instance` registered while its check passes, until Ctrl-C or SIGTERM.
pub async fn run(
    target: &Target,
    out: Output,
    instance: ServiceInstance,
    settings: Settings,
) -> CliResult {
    let signal = rpc_core::server::shutdown_signal();
    tokio::pin!(signal);
    let address = instance.address();
    let pinger = match settings.check {
        Check::Ping => {
            let addr = tokio::net::lookup_host(&address)
                .await
                .ok()
                .and_then(|mut found| found.next())
                .ok_or_else(|| CliError::new(format!("{address} does not resolve")))?;
            let client = Client::builder()
                .connect_timeout(settings.interval)
                .direct(addr);
            Some((client, addr))
        }
        _ => None,
    };
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut registered = false;
    let mut missed = 0u32;
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = ticker.tick() => {}
        }
        let outcome = tokio::select! {
            _ = &mut signal => break,
            outcome = check(&settings, &address, pinger.as_ref()) => outcome,
        };
        match outcome {
            Ok(()) => {
                missed = 0;
                if !registered {
                    match target.registry.register(&instance).await {
                        Ok(()) => {
                            registered = true;
                            event(&out, "registered", &instance, None)?;
                        }
                        Err(e) => event(&out, "register-failed", &instance, Some(&e.to_string()))?,
                    }
                }
            }
            Err(why) => {
                missed += 1;
                event(
                    &out,
                    "check-failed",
                    &instance,
                    Some(&format!("{why} ({missed}/{})", settings.misses)),
                )?;
                if registered && missed >= settings.misses {
                    deregister(target, &out, &instance).await?;
                    registered = false;
                }
            }
        }
    }
    if registered {
        deregister(target, &out, &instance).await?;
    }
    Ok(())
}

async fn deregister(target: &Target, out: &Output, instance: &ServiceInstance) -> CliResult {
    match target.registry.deregister(instance).await {
        Ok(()) => event(out, "deregistered", instance, None),
        Err(e) => event(out, "deregister-failed", instance, Some(&e.to_string())),
    }
}

/// Runs one check, bounded by the interval.
async fn check(
    settings: &Settings,
    address: &str,
    pinger: Option<&(Client, std::net::SocketAddr)>,
) -> Result<(), String> {
    let run = async {
        match &settings.check {
            Check::Tcp => TcpStream::connect(address)
                .await
                .map(drop)
                .map_err(|e| format!("tcp {address}: {e}")),
            Check::Ping => {
                let Some((client, addr)) = pinger else {
                    return Err("no ping client".to_string());
                };
                client
                    .ping(*addr)
                    .await
                    .map(drop)
                    .map_err(|e| format!("ping {address}: {e}"))
            }
            Check::Http(authority, path) => {
                match super::admin::send(authority, Method::GET, path).await {
                    Ok((status, _)) if (200..300).contains(&status) => Ok(()),
                    Ok((status, _)) => Err(format!("http://{authority}{path} answered {status}")),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    };
    tokio::time::timeout(settings.interval, run)
        .await
        .unwrap_or_else(|_| Err(format!("check took longer than {:?}", settings.interval)))
}

fn event(out: &Output, what: &str, instance: &ServiceInstance, detail: Option<&str>) -> CliResult {
    if out.is_json() {
        out.json_line(&json!({
            "event": what,
            "service": instance.key().to_string(),
            "address": instance.address(),
            "detail": detail,
        }))
    } else {
        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
        out.line(&format!(
            "{what} {} {}{detail}",
            instance.key(),
            instance.address()
        ))
    }
}
