//! `rpcctl watch [SERVICE]`: a live stream of instances joining, leaving and changing.
//!
//! Each watched key's snapshots are diffed against the one before. The instances already
//! there when the watch starts are printed first as `present` (they do not count towards
//! `--count`); after that every change is a `join`, `leave` or `update`. A lost registry
//! shows as `disconnected`, and its return as `reconnected` followed by whatever changed
//! meanwhile. Without SERVICE every key is followed: the key list is polled every second
//! and a watch started for each new key, whose instances then show as joins.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rpc_core::registry::WatchEvent;
use rpc_core::{Registry, ServiceInstance, ServiceKey};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::commands::Target;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output};
use crate::spinner;

/// How often the key list is polled when following every service.
const POLL: Duration = Duration::from_secs(1);

/// When the watch stops by itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Stop after this many join, leave and update events.
    pub count: Option<u64>,
    /// Stop after this long; with `count`, not reaching it by then is an error.
    pub timeout: Option<Duration>,
}

/// What one printed line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// There when the watch started.
    Present,
    /// A new instance.
    Join,
    /// An instance gone.
    Leave,
    /// An instance whose data changed.
    Update,
    /// The registry connection was lost.
    Disconnected,
    /// The registry is back; changes made meanwhile follow.
    Reconnected,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Present => "present",
            Kind::Join => "join",
            Kind::Leave => "leave",
            Kind::Update => "update",
            Kind::Disconnected => "disconnected",
            Kind::Reconnected => "reconnected",
        }
    }

    /// Whether the event counts towards `--count`.
    fn is_change(self) -> bool {
        matches!(self, Kind::Join | Kind::Leave | Kind::Update)
    }
}

/// One line of output.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    at: SystemTime,
    pub(crate) kind: Kind,
    key: ServiceKey,
    /// The instance (for a leave, as it was last seen).
    pub(crate) instance: Option<ServiceInstance>,
    /// For an update: the instance before.
    previous: Option<ServiceInstance>,
    /// For an update: what changed, for people.
    changes: Vec<String>,
    /// For a disconnect: why.
    reason: Option<String>,
}

impl Event {
    /// An event with no instance.
    pub(crate) fn new(at: SystemTime, kind: Kind, key: &ServiceKey) -> Event {
        Event {
            at,
            kind,
            key: key.clone(),
            instance: None,
            previous: None,
            changes: Vec::new(),
            reason: None,
        }
    }

    /// `<time>  <kind>  <key>  <address>  <details>`, the key padded to `key_width` so
    /// that the addresses of the keys known at the start line up.
    fn human(&self, key_width: usize) -> String {
        let mut line = format!(
            "{}  {:<12}  {:<key_width$}",
            output::timestamp(self.at),
            self.kind.name(),
            self.key.to_string()
        );
        if let Some(instance) = &self.instance {
            line.push_str("  ");
            line.push_str(&instance.address());
        }
        let details = match self.kind {
            Kind::Present | Kind::Join => self.instance.as_ref().map(|i| {
                let mut text = format!("weight={}", i.weight);
                if !i.metadata.is_empty() {
                    text.push_str(&format!(" metadata={}", output::metadata(&i.metadata)));
                }
                text
            }),
            Kind::Update => Some(self.changes.join("; ")),
            Kind::Disconnected => self.reason.clone(),
            Kind::Leave | Kind::Reconnected => None,
        };
        if let Some(details) = details.filter(|d| !d.is_empty()) {
            line.push_str("  ");
            line.push_str(&details);
        }
        line.trim_end().to_string()
    }

    /// The `--json` form, which the console's live page also receives.
    pub(crate) fn json(&self) -> serde_json::Value {
        let time_ms = self
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut value = json!({
            "time": output::timestamp(self.at),
            "time_ms": time_ms,
            "event": self.kind.name(),
            "key": self.key.to_string(),
            "service": self.key.name(),
            "version": self.key.version(),
        });
        if let Some(instance) = &self.instance {
            value["address"] = json!(instance.address());
            value["instance"] = json!(instance);
        }
        if let Some(previous) = &self.previous {
            value["previous"] = json!(previous);
            value["changes"] = json!(self.changes);
        }
        if let Some(reason) = &self.reason {
            value["reason"] = json!(reason);
        }
        value
    }
}

/// Turns one key's snapshots into events.
#[derive(Debug)]
pub(crate) struct Tracker {
    key: ServiceKey,
    /// The last snapshot, by address.
    known: BTreeMap<String, ServiceInstance>,
    /// Whether a snapshot has arrived yet.
    started: bool,
    /// Whether the first snapshot shows what was there at start (`present`) rather than
    /// what joined since (`join`).
    initial: bool,
    /// Whether the registry was lost and no snapshot has come since.
    disconnected: bool,
}

impl Tracker {
    /// A tracker for `key`; `initial`: its first snapshot shows what is there now
    /// (`present`) rather than what joined.
    pub(crate) fn new(key: ServiceKey, initial: bool) -> Tracker {
        Tracker {
            key,
            known: BTreeMap::new(),
            started: false,
            initial,
            disconnected: false,
        }
    }

    /// The instances of the last snapshot.
    pub(crate) fn known(&self) -> impl Iterator<Item = &ServiceInstance> {
        self.known.values()
    }

    /// The events `event` makes.
    pub(crate) fn apply(&mut self, event: WatchEvent, at: SystemTime) -> Vec<Event> {
        match event {
            WatchEvent::Disconnected { reason } => {
                if self.disconnected {
                    return Vec::new();
                }
                self.disconnected = true;
                let mut event = Event::new(at, Kind::Disconnected, &self.key);
                event.reason = Some(reason);
                vec![event]
            }
            WatchEvent::Snapshot(list) => {
                let mut events = Vec::new();
                if self.disconnected {
                    self.disconnected = false;
                    events.push(Event::new(at, Kind::Reconnected, &self.key));
                }
                let next: BTreeMap<String, ServiceInstance> =
                    list.into_iter().map(|i| (i.address(), i)).collect();
                let join = if !self.started && self.initial {
                    Kind::Present
                } else {
                    Kind::Join
                };
                self.started = true;
                events.extend(diff(&self.key, &self.known, &next, join, at));
                self.known = next;
                events
            }
        }
    }
}

/// The events that turn `old` into `new`, in address order; new addresses are `join`
/// events of kind `join` (or `present`, for the first snapshot).
fn diff(
    key: &ServiceKey,
    old: &BTreeMap<String, ServiceInstance>,
    new: &BTreeMap<String, ServiceInstance>,
    join: Kind,
    at: SystemTime,
) -> Vec<Event> {
    let addresses: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut events = Vec::new();
    for address in addresses {
        match (old.get(address), new.get(address)) {
            (None, Some(now)) => {
                let mut event = Event::new(at, join, key);
                event.instance = Some(now.clone());
                events.push(event);
            }
            (Some(before), None) => {
                let mut event = Event::new(at, Kind::Leave, key);
                event.instance = Some(before.clone());
                events.push(event);
            }
            (Some(before), Some(now)) if before != now => {
                let mut event = Event::new(at, Kind::Update, key);
                event.changes = changes(before, now);
                event.instance = Some(now.clone());
                event.previous = Some(before.clone());
                events.push(event);
            }
            _ => {}
        }
    }
    events
}

/// What differs between two versions of one instance, for people.
fn changes(before: &ServiceInstance, now: &ServiceInstance) -> Vec<String> {
    let mut out = Vec::new();
    if before.weight != now.weight {
        out.push(format!("weight {} -> {}", before.weight, now.weight));
    }
    if before.metadata != now.metadata {
        out.push(format!(
            "metadata {} -> {}",
            output::metadata(&before.metadata),
            output::metadata(&now.metadata)
        ));
    }
    if before.registered_at_ms != now.registered_at_ms {
        out.push("registered again".to_string());
    }
    if out.is_empty() {
        out.push("data changed".to_string());
    }
    out
}

/// What the watch tasks send to the printing loop.
enum Message {
    Event(ServiceKey, WatchEvent),
    Ended(ServiceKey),
}

/// Opens a watch on `key` and forwards its events to `tx` from a task.
async fn start_watch(
    registry: &Arc<dyn Registry>,
    key: &ServiceKey,
    tx: &mpsc::UnboundedSender<Message>,
) -> CliResult {
    let mut stream = registry.watch(key).await?;
    let (key, tx) = (key.clone(), tx.clone());
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if tx.send(Message::Event(key.clone(), event)).is_err() {
                return;
            }
        }
        let _ = tx.send(Message::Ended(key));
    });
    Ok(())
}

/// Watches `service`, or every service when `None`, until Ctrl-C or a limit.
pub async fn run(
    target: &Target,
    out: Output,
    key: Option<&ServiceKey>,
    limits: Limits,
) -> CliResult {
    let deadline = limits.timeout.map(|t| Instant::now() + t);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut trackers: BTreeMap<ServiceKey, Tracker> = BTreeMap::new();
    let what = key.map_or_else(|| "every service".to_string(), ToString::to_string);
    spinner::waiting(format!("starting to watch {what}"), async {
        let keys = match key {
            Some(key) => vec![key.clone()],
            None => target.registry.services().await?,
        };
        for key in keys {
            start_watch(&target.registry, &key, &tx).await?;
            trackers.insert(key.clone(), Tracker::new(key, true));
        }
        CliResult::Ok(())
    })
    .await?;
    let key_width = trackers
        .keys()
        .map(|k| k.to_string().chars().count())
        .max()
        .unwrap_or(0);
    if !out.is_json() && std::io::stderr().is_terminal() {
        eprintln!("watching {what} in {}; Ctrl-C to stop", target.label());
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = sleep_until(deadline) => {
                return match limits.count {
                    Some(count) => Err(CliError::new(format!(
                        "watch timed out after {:?} with {changes} of {count} events",
                        limits.timeout.unwrap_or_default()
                    ))),
                    None => Ok(()),
                };
            }
            _ = poll.tick(), if key.is_none() => {
                // Errors here are passing: the watches report the registry's state.
                let Ok(keys) = target.registry.services().await else { continue };
                for new in keys {
                    if trackers.contains_key(&new) {
                        continue;
                    }
                    match start_watch(&target.registry, &new, &tx).await {
                        Ok(()) => {
                            trackers.insert(new.clone(), Tracker::new(new, false));
                        }
                        Err(e) => tracing::warn!("cannot watch {new} yet: {e}"),
                    }
                }
            }
            message = rx.recv() => {
                let (key, event) = match message {
                    Some(Message::Event(key, event)) => (key, event),
                    Some(Message::Ended(key)) => {
                        return Err(CliError::new(format!("the registry ended the watch of {key}")));
                    }
                    // Never: this function holds a sender.
                    None => return Ok(()),
                };
                let Some(tracker) = trackers.get_mut(&key) else { continue };
                for event in tracker.apply(event, SystemTime::now()) {
                    if out.is_json() {
                        out.json_line(&event.json())?;
                    } else {
                        out.line(&event.human(key_width))?;
                    }
                    if event.kind.is_change() {
                        changes += 1;
                        if limits.count.is_some_and(|count| changes >= count) {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(port: u16, weight: u32) -> ServiceInstance {
        let mut i = ServiceInstance::new(&ServiceKey::new("s", "1"), "127.0.0.1", port);
        i.weight = weight;
        i.registered_at_ms = 1;
        i
    }

    fn kinds(events: &[Event]) -> Vec<(&'static str, String)> {
        events
            .iter()
            .map(|e| {
                let address = e.instance.as_ref().map(|i| i.address()).unwrap_or_default();
                (e.kind.name(), address)
            })
            .collect()
    }

    #[test]
    fn snapshots_become_joins_leaves_and_updates() {
        let at = SystemTime::now();
        let mut tracker = Tracker::new(ServiceKey::new("s", "1"), true);
        let first = tracker.apply(WatchEvent::Snapshot(vec![instance(1, 100)]), at);
        assert_eq!(kinds(&first), vec![("present", "127.0.0.1:1".into())]);
        let second = tracker.apply(
            WatchEvent::Snapshot(vec![instance(1, 50), instance(2, 100)]),
            at,
        );
        assert_eq!(
            kinds(&second),
            vec![
                ("update", "127.0.0.1:1".into()),
                ("join", "127.0.0.1:2".into())
            ]
        );
        assert_eq!(second[0].changes, vec!["weight 100 -> 50"]);
        let third = tracker.apply(WatchEvent::Snapshot(vec![instance(1, 50)]), at);
        assert_eq!(kinds(&third), vec![("leave", "127.0.0.1:2".into())]);
        let same = tracker.apply(WatchEvent::Snapshot(vec![instance(1, 50)]), at);
        assert!(same.is_empty());
    }

    #[test]
    fn a_key_found_later_starts_with_joins_and_outages_show() {
        let at = SystemTime::now();
        let mut tracker = Tracker::new(ServiceKey::new("s", "1"), false);
        let first = tracker.apply(WatchEvent::Snapshot(vec![instance(1, 100)]), at);
        assert_eq!(kinds(&first), vec![("join", "127.0.0.1:1".into())]);
        let lost = tracker.apply(
            WatchEvent::Disconnected {
                reason: "down".into(),
            },
            at,
        );
        assert_eq!(kinds(&lost), vec![("disconnected", String::new())]);
        assert!(lost[0].human(0).ends_with("down"));
        let again = tracker.apply(
            WatchEvent::Disconnected {
                reason: "down".into(),
            },
            at,
        );
        assert!(again.is_empty());
        let back = tracker.apply(WatchEvent::Snapshot(vec![]), at);
        assert_eq!(
            kinds(&back),
            vec![
                ("reconnected", String::new()),
                ("leave", "127.0.0.1:1".into())
            ]
        );
    }

    #[test]
    fn events_render_for_people_and_scripts() {
        let key = ServiceKey::new("s", "1");
        let mut event = Event::new(UNIX_EPOCH + Duration::from_millis(1_500), Kind::Join, &key);
        event.instance = Some(instance(7, 100));
        assert_eq!(
            event.human(5),
            "1970-01-01T00:00:01.500Z  join          s:1    127.0.0.1:7  weight=100"
        );
        let json = event.json();
        assert_eq!(json["event"], "join");
        assert_eq!(json["address"], "127.0.0.1:7");
        assert_eq!(json["instance"]["weight"], 100);
        assert_eq!(json["time_ms"], 1_500);
    }
}
