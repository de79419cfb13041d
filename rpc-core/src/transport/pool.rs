//! Connections by provider address: a fixed number of multiplexed connections per address,
//! opened on first use and replaced when they die.
//!
//! An address whose connections end at once, before the provider says anything (a server at
//! its connection limit accepts and closes), is not redialled on every call: further connects wait out a bounded, jittered backoff, and calls
//! meanwhile fail at once with the last error. A plain refused connect is cheap and is left
//! to fail-over's backoff and ejection, so a provider that comes back is reached at once. Closing the pool (the client was
//! dropped) closes every connection, so the provider sees the end of the connection at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::connection::Connection;
use super::settings::Settings;
use super::tls::{ClientTls, TlsConfigError, TlsConnect};
use crate::RpcError;

type Slot = Arc<OnceCell<Connection>>;

/// The hasher of the pool's maps: addresses come from the client's own settings and
/// registry, and every call looks one up.
type Hasher = foldhash::fast::RandomState;

/// A connection that ends this soon after opening, unheard, was refused by the provider.
const REFUSED_WITHIN: Duration = Duration::from_millis(100);

/// Shares connections between all calls of one client.
pub(crate) struct Pool {
    state: Mutex<State>,
    next: AtomicUsize,
    per_address: usize,
    settings: Settings,
    closed: AtomicBool,
    tls: TlsSetup,
}

/// The client's TLS: none configured, a connector, or why the settings cannot be used (every
/// TLS connect then fails with it).
enum TlsSetup {
    Off,
    Ready(TlsConnect),
    Broken(TlsConfigError),
}

#[derive(Default)]
struct State {
    slots: HashMap<SocketAddr, Vec<Slot>, Hasher>,
    /// Addresses known to serve TLS or plain TCP (from their registry nodes); others use
    /// TLS when the client has TLS settings.
    uses_tls: HashMap<SocketAddr, bool, Hasher>,
    /// Addresses whose last connect failed, and when the next may be tried.
    refused: HashMap<SocketAddr, Refused, Hasher>,
}

struct Refused {
    failures: u32,
    retry_at: Instant,
    error: RpcError,
}

impl Pool {
    pub(crate) fn new(per_address: usize, settings: Settings, tls: &ClientTls) -> Pool {
        let tls = if !tls.is_configured() {
            TlsSetup::Off
        } else {
            match TlsConnect::new(tls) {
                Ok(connect) => TlsSetup::Ready(connect),
                Err(e) => TlsSetup::Broken(e),
            }
        };
        Pool {
            state: Mutex::new(State::default()),
            next: AtomicUsize::new(0),
            per_address: per_address.max(1),
            settings,
            closed: AtomicBool::new(false),
            tls,
        }
    }

    /// A usable connection to `addr`, which serves TLS or not as its registry node says.
    pub(crate) async fn get_via(
        &self,
        addr: SocketAddr,
        uses_tls: bool,
    ) -> Result<Connection, RpcError> {
        self.get_with(addr, Some(uses_tls)).await
    }

    /// A usable connection to `addr`: TLS as last learnt for it, else as the client's
    /// settings say. Concurrent first calls share one connect.
    pub(crate) async fn get(&self, addr: SocketAddr) -> Result<Connection, RpcError> {
        self.get_with(addr, None).await
    }

    /// The connector for `addr`, if it is dialled with TLS.
    fn tls_for(
        &self,
        addr: SocketAddr,
        uses_tls: Option<bool>,
    ) -> Result<Option<&TlsConnect>, RpcError> {
        match (&self.tls, uses_tls) {
            (TlsSetup::Off, None | Some(false)) | (_, Some(false)) => Ok(None),
            (TlsSetup::Ready(connect), _) => Ok(Some(connect)),
            (TlsSetup::Broken(e), _) => Err(RpcError::Tls {
                addr,
                reason: format!("this client's TLS settings cannot be used: {e}"),
            }),
            (TlsSetup::Off, Some(true)) => Err(RpcError::Tls {
                addr,
                reason: "the provider serves TLS (its registry node says \"transport\": \"tls\") and this client has no trust roots: set client.tls.ca (RPC_TLS_CA)".to_string(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection to `addr` that is open and has answered, if there is one at hand: what
    /// [`Pool::get`] returns without waiting.
    pub(crate) fn get_ready(&self, addr: SocketAddr) -> Option<Connection> {
        self.ready(addr, None, self.next_index())
    }

    /// The slot the next call to an address uses: round-robin over its connections.
    fn next_index(&self) -> usize {
        if self.per_address == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % self.per_address
        }
    }

    async fn get_with(
        &self,
        addr: SocketAddr,
        uses_tls: Option<bool>,
    ) -> Result<Connection, RpcError> {
        let index = self.next_index();
        if let Some(connection) = self.ready(addr, uses_tls, index) {
            return Ok(connection);
        }
        // Boxed: the connect path (TCP, TLS handshake, timeouts) is a large future, and
        // every call's future would otherwise carry room for it.
        Box::pin(self.open(addr, uses_tls, index)).await
    }

    /// The connection in slot `index` for `addr` if it is open, has answered, and nothing
    /// about the address needs updating: what nearly every call finds, under one lookup.
    fn ready(&self, addr: SocketAddr, uses_tls: Option<bool>, index: usize) -> Option<Connection> {
        let state = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        if uses_tls.is_some() && state.uses_tls.get(&addr) != uses_tls.as_ref() {
            return None;
        }
        if !state.refused.is_empty() && state.refused.contains_key(&addr) {
            return None;
        }
        let connection = state.slots.get(&addr)?.get(index)?.get()?;
        (connection.is_usable() && connection.heard_anything()).then(|| connection.clone())
    }

    /// Opens (or waits for another call opening) the connection in slot `index` for `addr`,
    /// replacing one that died, unless the address is backing off.
    async fn open(
        &self,
        addr: SocketAddr,
        uses_tls: Option<bool>,
        index: usize,
    ) -> Result<Connection, RpcError> {
        let (slot, uses_tls) = {
            let mut state = self.lock();
            let uses_tls = match uses_tls {
                Some(known) => {
                    if state.uses_tls.get(&addr) != Some(&known) {
                        state.uses_tls.insert(addr, known);
                    }
                    Some(known)
                }
                None => state.uses_tls.get(&addr).copied(),
            };
            if self.closed.load(Ordering::Acquire) {
                return Err(RpcError::ConnectionLost {
                    addr,
                    reason: "the client was closed".to_string(),
                });
            }
            if let Some(refused) = state.refused.get(&addr) {
                if Instant::now() < refused.retry_at {
                    return Err(refused.error.clone());
                }
            }
            let per_address = self.per_address;
            let row = state.slots.entry(addr).or_insert_with(|| {
                (0..per_address)
                    .map(|_| Arc::new(OnceCell::new()))
                    .collect()
            });
            let current = row[index].get();
            let stale = current.filter(|c| !c.is_usable()).cloned();
            let answering = current.is_some_and(|c| c.is_usable() && c.heard_anything());
            if stale.is_some() {
                row[index] = Arc::new(OnceCell::new());
            }
            let slot = Arc::clone(&row[index]);
            if answering && !state.refused.is_empty() {
                state.refused.remove(&addr);
            }
            if stale.is_some_and(|dead| dead.ended_unheard_within(REFUSED_WITHIN)) {
                // Closed at once, before a single frame: refused at accept.
                let error = RpcError::ConnectionLost {
                    addr,
                    reason: "the connection ended before the provider answered anything"
                        .to_string(),
                };
                self.refused(&mut state, addr, error);
            }
            (slot, uses_tls)
        };
        let tls = self.tls_for(addr, uses_tls)?;
        let connected = slot
            .get_or_try_init(|| Connection::connect(addr, &self.settings, tls))
            .await
            .cloned();
        if let Ok(connection) = &connected {
            if self.closed.load(Ordering::Acquire) {
                connection.close("the client was closed");
            }
        }
        connected
    }

    /// Notes a connection to `addr` that ended unheard, and when the next may be opened.
    fn refused(&self, state: &mut State, addr: SocketAddr, error: RpcError) {
        let failures = state.refused.get(&addr).map_or(0, |r| r.failures);
        let delay = self.settings.reconnect_backoff.delay(failures);
        tracing::debug!(%addr, %error, ?delay, "connect failed; backing off before the next");
        state.refused.insert(
            addr,
            Refused {
                failures: failures.saturating_add(1),
                retry_at: Instant::now() + delay,
                error,
            },
        );
    }

    /// Forgets every connection to `addr` (the instance left the registry). Calls still in
    /// flight on them finish, or fail once the connection goes silent.
    pub(crate) fn remove(&self, addr: SocketAddr) {
        let mut state = self.lock();
        state.slots.remove(&addr);
        state.refused.remove(&addr);
        state.uses_tls.remove(&addr);
    }

    /// Closes every connection and refuses new ones.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let slots = std::mem::take(&mut self.lock().slots);
        for connection in slots.values().flatten().filter_map(|slot| slot.get()) {
            connection.close("the client was closed");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call awaits `get`: its future must hold room for a lookup, not for the connect
    /// path (TCP, TLS handshake, timeouts), which is boxed and taken only to open a connection.
    #[test]
    fn a_lookup_holds_no_room_for_opening_a_connection() {
        let settings = Settings {
            connect_timeout: Duration::from_secs(1),
            max_frame: 1024,
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(1),
            reconnect_backoff: crate::defaults::RECONNECT_BACKOFF,
        };
        let pool = Pool::new(1, settings, &ClientTls::default());
        let lookup = pool.get(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert!(
            std::mem::size_of_val(&lookup) <= 256,
            "a pool lookup's future is {} bytes",
            std::mem::size_of_val(&lookup)
        );
    }
}
