//! The closed-loop driver: `concurrency` callers each send a request, wait for its reply and
//! send the next, first for a warm-up, then for a fixed, timed window. Every reply that
//! arrives inside the window is counted and its latency recorded in an HdrHistogram.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::cpu::{CpuTime, Usage};
use crate::systems::{BenchError, EchoClient};

/// Latencies are recorded in nanoseconds, from 1 ns to 60 s, with 3 significant digits.
const HIGHEST_NS: u64 = 60_000_000_000;

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// One point of the load plan.
#[derive(Debug, Clone)]
pub struct Point {
    /// Payload bytes per request (and per reply).
    pub payload: usize,
    /// Callers, each with one request in flight.
    pub concurrency: usize,
    /// Time before the measured window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What one point measured.
#[derive(Debug)]
pub struct Measured {
    /// Replies completed inside the window.
    pub calls: u64,
    /// Calls that failed or came back wrong, over the whole run.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// The window's real length.
    pub elapsed: Duration,
    /// Latency of every counted call, in nanoseconds.
    pub latency: Histogram<u64>,
    /// CPU used by the client process during the window.
    pub client_cpu: CpuTime,
    /// CPU used by the server process during the window.
    pub server_cpu: CpuTime,
    /// Heap allocations the client process made during the window.
    pub client_allocs: u64,
    /// Heap allocations the server process made during the window.
    pub server_allocs: u64,
}

impl Measured {
    /// Completed calls per second.
    pub fn qps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }

    /// Client plus server CPU milliseconds per 1,000 calls.
    pub fn cpu_ms_per_1k(&self) -> f64 {
        let cpu_ms = (self.client_cpu.total() + self.server_cpu.total()).as_secs_f64() * 1_000.0;
        cpu_ms * 1_000.0 / (self.calls.max(1) as f64)
    }

    /// Client process allocations per completed call.
    pub fn allocs_per_call_client(&self) -> f64 {
        self.client_allocs as f64 / self.calls.max(1) as f64
    }

    /// Server process allocations per completed call.
    pub fn allocs_per_call_server(&self) -> f64 {
        self.server_allocs as f64 / self.calls.max(1) as f64
    }
}

struct Worker {
    latency: Histogram<u64>,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs one point against `client`. `server_usage` reads the server process's CPU time and
/// allocations; it is called right before and right after the window (outside the client's own
/// window, so its control-line traffic is not counted as the client's).
pub async fn run<C: EchoClient>(
    client: C,
    point: &Point,
    server_usage: &mut dyn FnMut() -> Result<Usage, BenchError>,
) -> Result<Measured, BenchError> {
    let payload = Bytes::from(vec![0xA5u8; point.payload]);
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut workers = Vec::with_capacity(point.concurrency);
    for _ in 0..point.concurrency.max(1) {
        let client = client.clone();
        let payload = payload.clone();
        let phase = Arc::clone(&phase);
        let latency = new_histogram()?;
        workers.push(tokio::spawn(caller(client, payload, phase, latency)));
    }

    tokio::time::sleep(point.warmup).await;
    let server_before = server_usage()?;
    let client_before = Usage::current();
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Release);

    tokio::time::sleep(point.duration).await;
    phase.store(STOP, Ordering::Release);
    let elapsed = started.elapsed();
    let client_after = Usage::current();
    let server_after = server_usage()?;

    let mut latency = new_histogram()?;
    let (mut calls, mut errors, mut first_error) = (0, 0, None);
    for worker in workers {
        let worker = worker.await?;
        latency.add(&worker.latency)?;
        calls += worker.calls;
        errors += worker.errors;
        if first_error.is_none() {
            first_error = worker.first_error;
        }
    }
    let (client, server) = (
        client_after.since(&client_before),
        server_after.since(&server_before),
    );
    Ok(Measured {
        calls,
        errors,
        first_error,
        elapsed,
        latency,
        client_cpu: client.cpu,
        server_cpu: server.cpu,
        client_allocs: client.allocations,
        server_allocs: server.allocations,
    })
}

fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Ok(Histogram::new_with_bounds(1, HIGHEST_NS, 3)?)
}

/// One closed-loop caller. Stops after too many errors so a dead server ends the point.
async fn caller<C: EchoClient>(
    client: C,
    payload: Bytes,
    phase: Arc<AtomicU8>,
    latency: Histogram<u64>,
) -> Worker {
    let mut worker = Worker {
        latency,
        calls: 0,
        errors: 0,
        first_error: None,
    };
    loop {
        if phase.load(Ordering::Acquire) == STOP {
            break;
        }
        let sent = Instant::now();
        let outcome = client.echo(&payload).await;
        let took = sent.elapsed();
        match outcome {
            Ok(len) if len == payload.len() => {
                if phase.load(Ordering::Acquire) == MEASURE {
                    worker.calls += 1;
                    worker
                        .latency
                        .saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                }
            }
            Ok(len) => worker.fail(format!(
                "reply of {len} bytes to a {} byte request",
                payload.len()
            )),
            Err(e) => worker.fail(e.to_string()),
        }
        if worker.errors >= 100 {
            break;
        }
    }
    worker
}

impl Worker {
    fn fail(&mut self, message: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message);
        }
    }
}
