//! Waiting with a deadline: poll a condition every few milliseconds, or read a watch stream
//! until a snapshot matches, and fail with a description of what never happened.

use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rpc_core::registry::{ServiceInstance, WatchEvent};
use tokio::time::Instant;

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns true; returns how long that took, or an error naming
/// `what` once `timeout` has passed. A check that hangs is cut off at the deadline.
pub async fn wait_until<F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
    .map(|((), elapsed)| elapsed)
}

/// Polls `probe` until it returns `Some`; returns the value and how long it took, or an
/// error naming `what` once `timeout` has passed.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut probe: F,
) -> Result<(T, Duration), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, probe()).await {
            return Ok((value, start.elapsed()));
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Checks that `check` stays true for the whole of `duration` (polled every [`POLL`]), for
/// properties that must hold over time, such as "the lease count stays at 1".
pub async fn holds_for<F, Fut>(duration: Duration, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < duration {
        if !check().await {
            return Err(format!(
                "{what} stopped holding after {:?}",
                start.elapsed()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// The next item of a stream, within `timeout`.
pub async fn next_event<S>(stream: &mut S, timeout: Duration) -> Result<S::Item, String>
where
    S: Stream + Unpin,
{
    match tokio::time::timeout(timeout, stream.next()).await {
        Ok(Some(item)) => Ok(item),
        Ok(None) => Err("the stream ended".into()),
        Err(_) => Err(format!("no event within {timeout:?}")),
    }
}

/// Reads a watch stream until a snapshot satisfies `matches`; returns every event read, the
/// matching snapshot last, or an error naming `what` (and what was seen) after `timeout`.
pub async fn watch_until<S, F>(
    stream: &mut S,
    timeout: Duration,
    what: &str,
    mut matches: F,
) -> Result<Vec<WatchEvent>, String>
where
    S: Stream<Item = WatchEvent> + Unpin,
    F: FnMut(&[ServiceInstance]) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => return Err(format!("watch ended before {what}; saw {seen:?}")),
            Err(_) => {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; saw {seen:?}"
                ))
            }
        };
        let done = matches!(&event, WatchEvent::Snapshot(list) if matches(list));
        seen.push(event);
        if done {
            return Ok(seen);
        }
    }
}

/// `host:port` of each instance, sorted: for comparing lists whatever their order.
pub fn addresses(instances: &[ServiceInstance]) -> Vec<String> {
    let mut out: Vec<String> = instances.iter().map(ServiceInstance::address).collect();
    out.sort();
    out
}
