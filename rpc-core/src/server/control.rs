//! Taking a running server out of rotation and back (`offline` / `online`), and what its
//! readiness is: serving and registered, offline, or draining for shutdown.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::registration::Registration;
use super::ServerError;
use crate::registry::ServiceInstance;

/// Where a running server stands with its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServingState {
    /// Serving, and every service registered: ready for traffic.
    Serving,
    /// Still serving direct calls, but deregistered on request: consumers stop sending.
    Offline,
    /// Shutting down: deregistered, draining in-flight calls.
    Draining,
}

impl ServingState {
    /// The state's name, as the admin endpoint reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServingState::Serving => "serving",
            ServingState::Offline => "offline",
            ServingState::Draining => "draining",
        }
    }

    fn from_u8(n: u8) -> ServingState {
        match n {
            0 => ServingState::Serving,
            1 => ServingState::Offline,
            _ => ServingState::Draining,
        }
    }
}

/// Controls a running server's registration; clones share it. Get one from
/// [`ServerHandle::control`](super::ServerHandle::control).
#[derive(Clone)]
pub struct ServerControl {
    inner: Arc<Inner>,
}

struct Inner {
    registration: Registration,
    state: AtomicU8,
    /// One transition at a time: offline, online and drain do not interleave.
    transition: tokio::sync::Mutex<()>,
}

impl ServerControl {
    pub(crate) fn new(registration: Registration) -> ServerControl {
        ServerControl {
            inner: Arc::new(Inner {
                registration,
                state: AtomicU8::new(ServingState::Serving as u8),
                transition: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub(crate) fn registration(&self) -> &Registration {
        &self.inner.registration
    }

    /// Where the server stands now.
    pub fn state(&self) -> ServingState {
        ServingState::from_u8(self.inner.state.load(Ordering::Acquire))
    }

    /// Serving and registered.
    pub fn is_ready(&self) -> bool {
        self.state() == ServingState::Serving
    }

    /// The instances this server publishes (whether or not they are registered now).
    pub fn instances(&self) -> &[ServiceInstance] {
        self.inner.registration.instances()
    }

    /// The registry backend's name, if the server registers anywhere.
    pub fn registry_backend(&self) -> Option<&'static str> {
        self.inner.registration.backend()
    }

    /// Deregisters every service and keeps serving: in-flight calls and new direct calls are
    /// answered; consumers stop sending once their watch drops the node. Does nothing when
    /// already offline; fails while draining.
    pub async fn offline(&self) -> Result<(), ServerError> {
        let _one = self.inner.transition.lock().await;
        match self.state() {
            ServingState::Offline => return Ok(()),
            ServingState::Draining => return Err(ServerError::Draining),
            ServingState::Serving => {}
        }
        self.set(ServingState::Offline);
        self.inner.registration.deregister().await
    }

    /// Registers every service again after [`offline`](Self::offline). Does nothing when
    /// serving; fails while draining.
    pub async fn online(&self) -> Result<(), ServerError> {
        let _one = self.inner.transition.lock().await;
        match self.state() {
            ServingState::Serving => return Ok(()),
            ServingState::Draining => return Err(ServerError::Draining),
            ServingState::Offline => {}
        }
        self.inner.registration.publish().await?;
        self.set(ServingState::Serving);
        Ok(())
    }

    /// Marks the server draining and withdraws its registrations (unless offline already
    /// withdrew them), waiting the propagation grace.
    pub(crate) async fn drain(&self) -> Result<(), ServerError> {
        let _one = self.inner.transition.lock().await;
        let was = self.state();
        self.set(ServingState::Draining);
        match was {
            ServingState::Serving => self.inner.registration.withdraw().await,
            ServingState::Offline | ServingState::Draining => Ok(()),
        }
    }

    fn set(&self, state: ServingState) {
        self.inner.state.store(state as u8, Ordering::Release);
    }
}
