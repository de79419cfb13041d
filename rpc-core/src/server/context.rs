//! What every connection of one server shares: the services and the limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Service;

/// What every connection of one server shares.
pub(crate) struct ConnectionContext {
    pub services: HashMap<String, Arc<dyn Service>>,
    pub max_frame: usize,
    pub max_in_flight: usize,
    pub idle_timeout: Option<Duration>,
    pub stop: CancellationToken,
    pub force: CancellationToken,
}
