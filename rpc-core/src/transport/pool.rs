//! Connections by provider address: a fixed number of multiplexed connections per address,
//! opened on first use and replaced when they die.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use super::connection::Connection;
use crate::RpcError;

type Slot = Arc<OnceCell<Connection>>;

/// Shares connections between all calls of one client.
pub(crate) struct Pool {
    slots: Mutex<HashMap<SocketAddr, Vec<Slot>>>,
    next: AtomicUsize,
    per_address: usize,
    connect_timeout: Duration,
    max_frame: usize,
}

impl Pool {
    pub(crate) fn new(per_address: usize, connect_timeout: Duration, max_frame: usize) -> Pool {
        Pool {
            slots: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            per_address: per_address.max(1),
            connect_timeout,
            max_frame,
        }
    }

    /// A usable connection to `addr`. Concurrent first calls share one connect.
    pub(crate) async fn get(&self, addr: SocketAddr) -> Result<Connection, RpcError> {
        let index = if self.per_address == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.per_address
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let row = slots.entry(addr).or_insert_with(|| {
                (0..self.per_address)
                    .map(|_| Arc::new(OnceCell::new()))
                    .collect()
            });
            let stale = row[index].get().is_some_and(|c| !c.is_usable());
            if stale {
                row[index] = Arc::new(OnceCell::new());
            }
            Arc::clone(&row[index])
        };
        slot.get_or_try_init(|| Connection::connect(addr, self.connect_timeout, self.max_frame))
            .await
            .cloned()
    }

    /// Forgets every connection to `addr` (the instance left the registry).
    pub(crate) fn remove(&self, addr: SocketAddr) {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
    }
}
