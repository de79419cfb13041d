//! The calls running on one server connection, by request id, so a cancel can abort one.
//!
//! Each call is one entry, and whoever removes the entry owns its end: the handler's
//! [`Ticket`] when it is dropped (completion, deadline, abort, panic), a cancel, or the
//! connection closing. The count is the map's length, changed only under the lock, so no
//! interleaving of those can count a call twice or not at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The calls running on one connection.
#[derive(Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
    /// The map's length, readable without the lock.
    count: AtomicUsize,
    /// Notified whenever the last call ends.
    idle: Notify,
}

#[derive(Default)]
struct State {
    calls: HashMap<u64, Entry>,
    /// Tells apart two calls that reused one request id, so an old ticket never ends a newer
    /// call.
    next_seq: u64,
}

struct Entry {
    seq: u64,
    /// `None` until the handler's task is spawned.
    abort: Option<AbortHandle>,
}

/// Why a call was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection already runs its limit of calls.
    Full,
    /// A call with this request id is already running.
    DuplicateId,
}

/// One admitted call. Dropping it ends the call's entry, unless a cancel or the connection
/// already did.
pub(crate) struct Ticket {
    in_flight: Arc<InFlight>,
    id: u64,
    seq: u64,
}

impl InFlight {
    /// Admits call `id` if fewer than `max` are running and the id is not in use.
    pub(crate) fn admit(self: &Arc<Self>, id: u64, max: usize) -> Result<Ticket, Refused> {
        let mut state = self.lock();
        if state.calls.len() >= max {
            return Err(Refused::Full);
        }
        if state.calls.contains_key(&id) {
            return Err(Refused::DuplicateId);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.calls.insert(id, Entry { seq, abort: None });
        self.count.store(state.calls.len(), Ordering::Release);
        Ok(Ticket {
            in_flight: Arc::clone(self),
            id,
            seq,
        })
    }

    /// Records the task running `ticket`'s call, so a cancel can abort it. When the call has
    /// already ended (cancelled before its task existed, or finished), the task is aborted.
    pub(crate) fn attach(&self, id: u64, seq: u64, task: AbortHandle) {
        let mut state = self.lock();
        match state.calls.get_mut(&id) {
            Some(entry) if entry.seq == seq => entry.abort = Some(task),
            _ => {
                // Outside the lock: the aborted task's ticket takes it when dropped.
                drop(state);
                task.abort();
            }
        }
    }

    /// Ends call `id` at the peer's request and aborts its handler; a no-op for an id that is
    /// not running.
    pub(crate) fn cancel(&self, id: u64) {
        let mut state = self.lock();
        if let Some(entry) = state.calls.remove(&id) {
            self.removed(&state);
            drop(state);
            if let Some(task) = entry.abort {
                task.abort();
            }
        }
    }

    /// Ends every call and aborts every handler: the peer is gone or the server is forced down.
    pub(crate) fn abort_all(&self) {
        let mut state = self.lock();
        let calls: Vec<Entry> = state.calls.drain().map(|(_, entry)| entry).collect();
        self.removed(&state);
        drop(state);
        for task in calls.into_iter().filter_map(|entry| entry.abort) {
            task.abort();
        }
    }

    /// Calls running now.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once no call is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }

    fn end(&self, id: u64, seq: u64) {
        let mut state = self.lock();
        if state.calls.get(&id).is_some_and(|entry| entry.seq == seq) {
            state.calls.remove(&id);
            self.removed(&state);
        }
    }

    /// Publishes the count after a removal, and wakes whoever waits for the last call.
    fn removed(&self, state: &State) {
        self.count.store(state.calls.len(), Ordering::Release);
        if state.calls.is_empty() {
            self.idle.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Ticket {
    /// The call's place in the map, for [`InFlight::attach`].
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_flight.end(self.id, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Step {
        Attach,
        Complete,
        Cancel,
        Disconnect,
    }

    /// Every order of completion, cancel, attach and disconnect leaves the count at zero, the
    /// task aborted unless it had completed on its own, and the connection able to run its
    /// full limit again.
    #[tokio::test]
    async fn every_interleaving_counts_each_call_once() {
        use Step::*;
        let orders: [&[Step]; 10] = [
            &[Attach, Complete, Cancel],
            &[Attach, Cancel, Complete],
            &[Cancel, Attach, Complete],
            &[Cancel, Complete, Attach],
            &[Complete, Cancel, Attach],
            &[Complete, Attach, Cancel],
            &[Attach, Disconnect, Complete, Cancel],
            &[Cancel, Disconnect, Attach, Complete],
            &[Disconnect, Attach, Cancel, Complete],
            &[Attach, Complete, Disconnect, Cancel],
        ];
        for order in orders {
            let in_flight = Arc::new(InFlight::default());
            let mut ticket = Some(in_flight.admit(7, 2).unwrap());
            let seq = ticket.as_ref().map(Ticket::seq).unwrap();
            assert_eq!(in_flight.len(), 1);
            let handle = tokio::spawn(std::future::pending::<()>());
            for step in order {
                match step {
                    Attach => in_flight.attach(7, seq, handle.abort_handle()),
                    Complete => drop(ticket.take()),
                    Cancel => in_flight.cancel(7),
                    Disconnect => in_flight.abort_all(),
                }
            }
            assert_eq!(in_flight.len(), 0, "{order:?}");
            assert!(in_flight.is_idle());
            let finished_on_its_own = order[..2] == [Attach, Complete];
            if finished_on_its_own {
                handle.abort();
            } else {
                let result = tokio::time::timeout(std::time::Duration::from_secs(5), handle)
                    .await
                    .unwrap_or_else(|_| panic!("{order:?}: the task was not aborted"));
                assert!(result.unwrap_err().is_cancelled(), "{order:?}");
            }
            let _a = in_flight.admit(1, 2).unwrap();
            let _b = in_flight.admit(2, 2).unwrap();
            assert_eq!(
                in_flight.admit(3, 2).err(),
                Some(Refused::Full),
                "{order:?}"
            );
        }
    }

    /// An old ticket for a reused id does not end the newer call.
    #[tokio::test]
    async fn a_stale_ticket_leaves_a_reused_id_alone() {
        let in_flight = Arc::new(InFlight::default());
        let old = in_flight.admit(5, 10).unwrap();
        assert_eq!(in_flight.admit(5, 10).err(), Some(Refused::DuplicateId));
        in_flight.cancel(5);
        let new = in_flight.admit(5, 10).unwrap();
        drop(old);
        assert_eq!(in_flight.len(), 1);
        let handle = tokio::spawn(std::future::pending::<()>());
        in_flight.attach(5, new.seq(), handle.abort_handle());
        in_flight.cancel(5);
        assert!(handle.await.unwrap_err().is_cancelled());
        drop(new);
        assert_eq!(in_flight.len(), 0);
    }

    #[tokio::test]
    async fn idle_wakes_when_the_last_call_ends() {
        let in_flight = Arc::new(InFlight::default());
        let a = in_flight.admit(1, 10).unwrap();
        let b = in_flight.admit(2, 10).unwrap();
        let waiter = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            async move { in_flight.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }
}
