//! State shared by the registry handle, its keeper and its watch tasks.

use std::collections::BTreeMap;

use rpc_core::registry::{RegistryError, ServiceInstance};
use tokio::sync::watch;

use super::connection::{Connection, REGISTRY};
use crate::layout::WarnOnce;
use crate::options::RegistryOptions;

/// One registry client's state.
pub(crate) struct Shared {
    /// The server.
    pub(crate) connection: Connection,
    /// Options from the URL.
    pub(crate) options: RegistryOptions,
    /// Key -> instance, for every instance this process registered and has not
    /// deregistered. The lock also orders writes of these keys against each other.
    pub(crate) registered: tokio::sync::Mutex<BTreeMap<String, ServiceInstance>>,
    /// Bad values already warned about.
    pub(crate) warn_once: WarnOnce,
    /// `true` once shut down: the keeper and every watch stop.
    closed: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(connection: Connection, options: RegistryOptions) -> Shared {
        Shared {
            connection,
            options,
            registered: tokio::sync::Mutex::new(BTreeMap::new()),
            warn_once: WarnOnce::default(),
            closed: watch::Sender::new(false),
        }
    }

    /// The TTL in milliseconds, as `PX` and `PEXPIRE` take it.
    pub(crate) fn ttl_ms(&self) -> u64 {
        (self.options.ttl.as_millis() as u64).max(1)
    }

    /// Fails with [`RegistryError::Closed`] after shutdown.
    pub(crate) fn check_open(&self) -> Result<(), RegistryError> {
        if *self.closed.borrow() {
            Err(RegistryError::Closed { registry: REGISTRY })
        } else {
            Ok(())
        }
    }

    /// Tells every task to stop.
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Resolves once the registry is shut down.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}
