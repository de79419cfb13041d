//! What every connection of one server shares: the services, the limits and the budgets.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::frame_reader::PartialBudget;
use super::layer::ServerStack;
use crate::protocol::{Codecs, MetadataLimits};
use crate::Service;

/// The served services by key. Only the server inserts into it, so a fast hasher is safe:
/// a peer can only look keys up.
pub(crate) type ServiceMap = HashMap<String, Arc<dyn Service>, foldhash::fast::RandomState>;

/// What every connection of one server shares.
pub(crate) struct ConnectionContext {
    pub services: Arc<ServiceMap>,
    /// The codecs requests may use; another codec byte gets status 4.
    pub codecs: Codecs,
    /// The builder's layers over the services; `None` dispatches straight to the handler.
    pub stack: Option<ServerStack>,
    pub max_frame: usize,
    pub max_in_flight: usize,
    pub metadata_limits: MetadataLimits,
    pub idle_timeout: Option<Duration>,
    /// Unsent reply bytes above which a connection stops reading.
    pub max_unsent: usize,
    /// How long a started frame may take, and a stalled peer may keep replies unread.
    pub frame_timeout: Duration,
    /// Bytes of partially received frames, server-wide.
    pub partial_budget: PartialBudget,
    /// Unsent reply bytes, server-wide.
    pub unsent_total: Arc<AtomicUsize>,
    pub stop: CancellationToken,
    pub force: CancellationToken,
}
