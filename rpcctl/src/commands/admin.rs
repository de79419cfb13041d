//! `rpcctl offline|online|stats ADMIN_ADDR`: a process's admin endpoint (`--admin` /
//! `server.admin`; providers publish it as `rpc.admin`, which `rpcctl show` lists).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use tokio::net::TcpStream;

use crate::error::{CliError, CliResult};
use crate::output::{Output, Table};

/// How long one admin request may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest admin answer read (a metrics page of many series fits).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Sends `method path` to the admin endpoint (or any HTTP/1 server) at `address`; the
/// status and body.
pub async fn send(address: &str, method: Method, path: &str) -> CliResult<(u16, String)> {
    send_bounded(address, method, path, TIMEOUT, MAX_ANSWER).await
}

/// [`send`] with its own time budget and answer size limit (the console scrapes many
/// providers, each with a short budget).
pub async fn send_bounded(
    address: &str,
    method: Method,
    path: &str,
    timeout: Duration,
    max_answer: usize,
) -> CliResult<(u16, String)> {
    let exchange = async {
        let stream = TcpStream::connect(address).await.map_err(|e| {
            CliError::new(format!("cannot reach the admin endpoint {address}: {e}"))
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::new(format!("admin endpoint {address}: {e}")))?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, address)
            .body(Empty::<Bytes>::new())
            .map_err(|e| CliError::new(format!("bad admin request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CliError::new(format!("admin endpoint {address}: {e}")))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), max_answer)
            .collect()
            .await
            .map_err(|e| CliError::new(format!("admin endpoint {address}: {e}")))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        CliError::new(format!(
            "the admin endpoint {address} did not answer in {timeout:?}"
        ))
    })?
}

/// `offline` (`online: false`) or `online`: deregisters or registers the provider again.
pub async fn transition(out: Output, address: &str, online: bool) -> CliResult {
    let path = if online { "/online" } else { "/offline" };
    let (status, body) = send(address, Method::POST, path).await?;
    if status != 200 {
        return Err(CliError::new(format!("{address}{path}: {status} {body}")));
    }
    if out.is_json() {
        out.json_value(&json!({ "address": address, "state": body }))
    } else {
        out.line(&format!("{address}: {body}"))
    }
}

/// `stats`: the process's calls per service, method and status, from its `/metrics`.
pub async fn stats(out: Output, address: &str) -> CliResult {
    let (status, body) = send(address, Method::GET, "/metrics").await?;
    if status != 200 {
        return Err(CliError::new(format!("{address}/metrics: {status} {body}")));
    }
    let scrape = Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| CliError::new(format!("{address}/metrics does not parse: {e}")))?;
    let mut rows: BTreeMap<(String, String, String, String), (f64, f64)> = BTreeMap::new();
    let mut gauges = BTreeMap::new();
    for sample in &scrape.samples {
        let side = sample
            .metric
            .strip_prefix("rpc_")
            .and_then(|m| {
                m.strip_suffix("_call_duration_seconds_count")
                    .map(|s| (s, 0))
            })
            .or_else(|| {
                sample
                    .metric
                    .strip_prefix("rpc_")
                    .and_then(|m| m.strip_suffix("_call_duration_seconds_sum").map(|s| (s, 1)))
            });
        let value = match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => continue,
        };
        if let Some((side, which)) = side {
            let label = |name: &str| sample.labels.get(name).unwrap_or("").to_string();
            let key = (
                side.to_string(),
                label("rpc_service"),
                label("rpc_method"),
                label("rpc_response_status_code"),
            );
            let row = rows.entry(key).or_default();
            if which == 0 {
                row.0 += value;
            } else {
                row.1 += value;
            }
        } else if let Value::Gauge(v) = sample.value {
            if sample.labels.is_empty() {
                gauges.insert(sample.metric.clone(), v);
            }
        }
    }
    if out.is_json() {
        let calls: Vec<_> = rows
            .iter()
            .map(|((side, service, method, status), (count, sum))| {
                json!({"side": side, "service": service, "method": method, "status": status,
                       "calls": count, "seconds": sum})
            })
            .collect();
        return out.json_value(&json!({ "address": address, "calls": calls, "gauges": gauges }));
    }
    let mut table = Table::new(&["SIDE", "SERVICE", "METHOD", "STATUS", "CALLS", "MEAN"]);
    for ((side, service, method, status), (count, sum)) in &rows {
        let mean = if *count > 0.0 { sum / count } else { 0.0 };
        table.row(vec![
            side.clone(),
            service.clone(),
            method.clone(),
            status.clone(),
            format!("{count}"),
            format!("{:.3} ms", mean * 1000.0),
        ]);
    }
    out.line(table.render().trim_end())?;
    for (name, value) in gauges {
        out.line(&format!("{name} {value}"))?;
    }
    Ok(())
}
