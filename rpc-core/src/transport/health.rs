//! Connection health: while a connection has calls in flight it is pinged, and if nothing at
//! all (no reply, no pong) comes back for the ping timeout, it is declared dead and its calls
//! fail at once. This is what notices a frozen provider (SIGSTOP, a long GC pause) or a
//! half-open connection after a network cut, where TCP itself stays silent and a connect
//! to the address still succeeds.
//!
//! An idle connection is not pinged: the task sleeps until a call is added.

use std::sync::Arc;

use tokio::time::Instant;

use super::connection::Shared;
use crate::protocol::{Frame, Kind};

/// The id of health pings. Calls use ids from 1, so a pong with this id matches no call.
pub(super) const HEALTH_PING_ID: u64 = 0;

/// Runs until the connection closes; closes it when it stays silent too long with calls in
/// flight.
pub(super) async fn watch(shared: Arc<Shared>) {
    let interval = shared.settings.ping_interval;
    let timeout = shared.settings.ping_timeout;
    if interval.is_zero() {
        return;
    }
    loop {
        // Idle: wait for a call. A call added before we wait leaves a permit, so none is missed.
        while !shared.has_calls() {
            tokio::select! {
                _ = shared.busy.notified() => {}
                _ = shared.closed.cancelled() => return,
            }
        }
        // Silence counts from the later of the last frame heard and the start of this busy
        // spell: a call on a connection idle for an hour is not silent yet.
        let busy_from = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shared.closed.cancelled() => return,
            }
            if !shared.has_calls() {
                break;
            }
            let silent_for = shared.last_heard().max(busy_from).elapsed();
            if silent_for >= timeout {
                tracing::warn!(
                    peer = %shared.addr,
                    ?silent_for,
                    "provider answered nothing, not even a ping; closing the connection"
                );
                shared.close_unresponsive(silent_for);
                return;
            }
            let _ = shared
                .writer
                .send(&Frame::control(Kind::Ping, HEALTH_PING_ID));
        }
    }
}
