//! `rpcctl ping HOST:PORT`: protocol pings (frame kind 2, answered by a pong) and their
//! round-trip times, like `ping(8)` for one provider.

use std::net::SocketAddr;
use std::time::Duration;

use rpc_core::ClientBuilder;
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::spinner;

/// How many pings, how far apart, and how long each may take.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Pings to send.
    pub count: u32,
    /// Pause between pings.
    pub interval: Duration,
    /// Longest wait for one pong (connecting included).
    pub timeout: Duration,
}

/// Pings `address` `count` times and prints each round trip and a summary. Fails when no
/// pong came back at all.
pub async fn run(
    out: Output,
    address: &str,
    settings: Settings,
    builder: ClientBuilder,
) -> CliResult {
    let addr = resolve(address).await?;
    let client = builder.connect_timeout(settings.timeout).direct(addr);
    if !out.is_json() {
        out.line(&format!("PING {address} ({addr}) with rpc protocol pings"))?;
    }
    let mut rtts: Vec<Duration> = Vec::new();
    let mut last_error = None;
    let mut sent = 0u32;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    for seq in 1..=settings.count {
        if seq > 1 {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = tokio::time::sleep(settings.interval) => {}
            }
        }
        sent += 1;
        let ping = tokio::time::timeout(settings.timeout, client.ping(addr));
        let answer = tokio::select! {
            _ = &mut ctrl_c => break,
            answer = spinner::waiting(format!("waiting for a pong from {addr}"), ping) => answer,
        };
        let answer = answer.unwrap_or(Err(rpc_core::RpcError::DeadlineExceeded {
            deadline: settings.timeout,
        }));
        match answer {
            Ok(rtt) => {
                rtts.push(rtt);
                if !out.is_json() {
                    out.line(&format!("pong from {addr}: seq={seq} time={}", millis(rtt)))?;
                }
            }
            Err(e) => {
                if !out.is_json() {
                    out.line(&format!("no pong from {addr}: seq={seq}: {e}"))?;
                }
                last_error = Some(e.to_string());
            }
        }
    }
    let received = rtts.len() as u32;
    let lost = sent - received;
    let stats = Stats::of(&rtts);
    if out.is_json() {
        // Microsecond precision: a clock read is not finer than that anyway.
        let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0;
        out.json_line(&json!({
            "address": address,
            "resolved": addr.to_string(),
            "sent": sent,
            "received": received,
            "rtt_ms": rtts.iter().map(|&d| ms(d)).collect::<Vec<_>>(),
            "min_ms": stats.map(|s| ms(s.min)),
            "avg_ms": stats.map(|s| ms(s.avg)),
            "max_ms": stats.map(|s| ms(s.max)),
            "error": last_error,
        }))?;
    } else {
        out.line(&format!("--- {address} ping statistics ---"))?;
        let loss = (lost * 100).checked_div(sent).unwrap_or(0);
        let mut summary = format!("{sent} sent, {received} received, {loss}% lost");
        if let Some(s) = stats {
            summary.push_str(&format!(
                "; rtt min/avg/max = {}/{}/{}",
                millis(s.min),
                millis(s.avg),
                millis(s.max)
            ));
        }
        out.line(&summary)?;
    }
    match (received, last_error) {
        (0, Some(e)) => Err(CliError::new(format!("no pong from {address}: {e}"))),
        _ => Ok(()),
    }
}

/// Resolves `HOST:PORT` to its first address.
async fn resolve(address: &str) -> CliResult<SocketAddr> {
    let bad = |why: String| {
        CliError::new(format!(
            "bad address {address:?}: {why}; expected HOST:PORT, e.g. 127.0.0.1:9101"
        ))
    };
    if !address.contains(':') {
        return Err(bad("no port".to_string()));
    }
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("it resolves to no address".to_string()))
}

/// `0.123 ms`.
fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1_000.0)
}

/// Smallest, mean and largest round trip.
#[derive(Debug, Clone, Copy)]
struct Stats {
    min: Duration,
    avg: Duration,
    max: Duration,
}

impl Stats {
    fn of(rtts: &[Duration]) -> Option<Stats> {
        let min = *rtts.iter().min()?;
        let max = *rtts.iter().max()?;
        let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
        Some(Stats { min, avg, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_formatting() {
        assert!(Stats::of(&[]).is_none());
        let s = Stats::of(&[Duration::from_micros(100), Duration::from_micros(300)]).unwrap();
        assert_eq!(s.min, Duration::from_micros(100));
        assert_eq!(s.avg, Duration::from_micros(200));
        assert_eq!(s.max, Duration::from_micros(300));
        assert_eq!(millis(Duration::from_micros(1_234)), "1.234 ms");
    }
}
