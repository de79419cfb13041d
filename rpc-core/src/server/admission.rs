//! Which connections a server serves: at most `max_connections`, at most
//! `max_connections_per_address` from one IP address, and under either limit a newcomer is
//! admitted by reclaiming the connection that has been idle longest (no call in flight,
//! oldest last frame), so one peer holding idle connections cannot lock anyone out, not even
//! a newcomer from its own address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::in_flight::InFlight;

/// The connections being served.
pub(crate) struct Admission {
    table: Mutex<Table>,
    max_connections: usize,
    max_per_address: Option<usize>,
    /// Activity stamps count milliseconds from here.
    epoch: Instant,
}

#[derive(Default)]
struct Table {
    slots: HashMap<u64, Arc<Slot>>,
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// What admission knows of one connection.
pub(crate) struct Slot {
    address: IpAddr,
    /// Milliseconds from the epoch to the connection's last frame.
    last_active_ms: AtomicU64,
    /// Its calls; none running means it may be reclaimed.
    pub(crate) in_flight: Arc<InFlight>,
    /// Cancelled when the connection is reclaimed for a newcomer.
    pub(crate) reclaimed: CancellationToken,
}

/// A connection's place. Dropping it frees the place, unless the connection was reclaimed
/// (which freed it already, for the newcomer).
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    id: u64,
    pub(crate) slot: Arc<Slot>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max_connections` are served and every one has a call in flight.
    Server,
    /// The address has its cap of connections and every one has a call in flight.
    Address,
}

impl Admission {
    pub(crate) fn new(max_connections: usize, max_per_address: Option<usize>) -> Admission {
        Admission {
            table: Mutex::default(),
            max_connections: max_connections.max(1),
            max_per_address: max_per_address.map(|n| n.max(1)),
            epoch: Instant::now(),
        }
    }

    /// Admits a connection from `address`, reclaiming the longest-idle one if a limit is
    /// reached.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Full> {
        let mut table = self.lock();
        let from_address = table.per_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address.is_some_and(|cap| from_address >= cap) {
            let victim = table.longest_idle(Some(address)).ok_or(Full::Address)?;
            table.reclaim(victim);
        } else if table.slots.len() >= self.max_connections {
            let victim = table.longest_idle(None).ok_or(Full::Server)?;
            table.reclaim(victim);
        }
        let id = table.next_id;
        table.next_id += 1;
        let slot = Arc::new(Slot {
            address,
            last_active_ms: AtomicU64::new(self.now_ms()),
            in_flight: Arc::default(),
            reclaimed: CancellationToken::new(),
        });
        table.slots.insert(id, Arc::clone(&slot));
        *table.per_address.entry(address).or_default() += 1;
        Ok(Admitted {
            admission: Arc::clone(self),
            id,
            slot,
        })
    }

    /// Connections admitted and not yet closed or reclaimed.
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Table {
    /// The connection with no call in flight whose last frame is oldest, from `address` if
    /// given. A scan, but only when a limit is reached, never per call.
    fn longest_idle(&self, address: Option<IpAddr>) -> Option<u64> {
        self.slots
            .iter()
            .filter(|(_, slot)| match address {
                Some(address) => slot.address == address,
                None => true,
            })
            .filter(|(_, slot)| slot.in_flight.is_idle())
            .min_by_key(|(_, slot)| slot.last_active_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id)
    }

    /// Takes a connection's place away and tells it to go.
    fn reclaim(&mut self, id: u64) {
        if let Some(slot) = self.remove(id) {
            slot.reclaimed.cancel();
        }
    }

    fn remove(&mut self, id: u64) -> Option<Arc<Slot>> {
        let slot = self.slots.remove(&id)?;
        if let Some(n) = self.per_address.get_mut(&slot.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&slot.address);
            }
        }
        Some(slot)
    }
}

impl Admitted {
    /// Records frames from the peer that arrived at `now`: the connection is active.
    pub(crate) fn touch(&self, now: std::time::Instant) {
        let ms = now
            .saturating_duration_since(self.admission.epoch)
            .as_millis() as u64;
        self.slot.last_active_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the peer's last frame.
    pub(crate) fn quiet_for(&self) -> std::time::Duration {
        let last = self.slot.last_active_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(self.admission.now_ms().saturating_sub(last))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn a_full_server_reclaims_the_longest_idle_connection() {
        let admission = Arc::new(Admission::new(3, None));
        let oldest = admission.admit(A).unwrap();
        let busy = admission.admit(A).unwrap();
        let recent = admission.admit(B).unwrap();
        oldest.slot.last_active_ms.store(1, Ordering::Relaxed);
        busy.slot.last_active_ms.store(0, Ordering::Relaxed);
        recent.slot.last_active_ms.store(5, Ordering::Relaxed);
        let _call = busy.slot.in_flight.admit(1, 10).unwrap();
        let newcomer = admission.admit(A).unwrap();
        assert!(oldest.slot.reclaimed.is_cancelled());
        assert!(!busy.slot.reclaimed.is_cancelled() && !recent.slot.reclaimed.is_cancelled());
        assert_eq!(admission.len(), 3);
        drop(oldest); // its place went to the newcomer already
        assert_eq!(admission.len(), 3);
        let next = admission.admit(B).unwrap();
        assert!(recent.slot.reclaimed.is_cancelled() || newcomer.slot.reclaimed.is_cancelled());
        drop(next);
        assert_eq!(admission.len(), 2);
    }

    #[test]
    fn nothing_idle_means_refused() {
        let admission = Arc::new(Admission::new(1, None));
        let only = admission.admit(A).unwrap();
        let _call = only.slot.in_flight.admit(1, 10).unwrap();
        assert_eq!(admission.admit(B).err(), Some(Full::Server));
    }

    #[test]
    fn the_per_address_cap_reclaims_from_that_address_only() {
        let admission = Arc::new(Admission::new(10, Some(2)));
        let a1 = admission.admit(A).unwrap();
        let b1 = admission.admit(B).unwrap();
        b1.slot.last_active_ms.store(0, Ordering::Relaxed);
        a1.slot.last_active_ms.store(3, Ordering::Relaxed);
        let a2 = admission.admit(A).unwrap();
        a2.slot.last_active_ms.store(10, Ordering::Relaxed);
        let _a3 = admission.admit(A).unwrap();
        assert!(a1.slot.reclaimed.is_cancelled());
        assert!(!b1.slot.reclaimed.is_cancelled() && !a2.slot.reclaimed.is_cancelled());
        let _call = a2.slot.in_flight.admit(1, 10).unwrap();
        let _a4 = admission.admit(A).unwrap();
        assert!(!a2.slot.reclaimed.is_cancelled());
    }
}
