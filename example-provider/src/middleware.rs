//! Two server middlewares built on `tower`, as a starting point for real ones: a check that
//! refuses calls without a metadata entry (an auth check: status 9), and a rate limit that
//! answers calls over its budget with status 6 instead of queueing them.
//!
//! ```
//! use std::time::Duration;
//! use example_provider::middleware::{RateLimitLayer, RequireMetadataLayer};
//!
//! let server = rpc_core::Server::builder()
//!     .layer(RequireMetadataLayer::new("authorization"))
//!     .layer(RateLimitLayer::new(100, Duration::from_secs(1)));
//! # let _ = server;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rpc_core::server::{Rejection, ServerRequest};
use rpc_core::tower::{Layer, Service};
use rpc_core::Status;

/// What the middlewares' services return: the inner future, or a refusal.
pub type BoxedReply<T> = Pin<Box<dyn Future<Output = Result<T, Rejection>> + Send>>;

/// Refuses every call whose metadata lacks `key` with status 9 (unauthenticated).
#[derive(Debug, Clone)]
pub struct RequireMetadataLayer {
    key: Arc<str>,
}

impl RequireMetadataLayer {
    /// Requires `key` (e.g. `authorization`) on every call.
    pub fn new(key: &str) -> RequireMetadataLayer {
        RequireMetadataLayer { key: key.into() }
    }
}

impl<S> Layer<S> for RequireMetadataLayer {
    type Service = RequireMetadata<S>;

    fn layer(&self, inner: S) -> RequireMetadata<S> {
        RequireMetadata {
            inner,
            key: Arc::clone(&self.key),
        }
    }
}

/// The service [`RequireMetadataLayer`] makes.
#[derive(Debug, Clone)]
pub struct RequireMetadata<S> {
    inner: S,
    key: Arc<str>,
}

impl<S> Service<ServerRequest> for RequireMetadata<S>
where
    S: Service<ServerRequest, Error = Rejection>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Rejection;
    type Future = BoxedReply<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ServerRequest) -> Self::Future {
        if request.metadata().get(&self.key).is_none() {
            let refusal = Rejection::new(
                Status::Unauthenticated,
                format!("the call carries no {:?} metadata", &*self.key),
            );
            return Box::pin(async move { Err(refusal) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// Lets at most `calls` calls through per `period` (a fixed window, shared by every
/// connection of the server); the rest get status 6 (overloaded) at once, so a client's
/// fail-over can try another provider.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    window: Arc<Mutex<Window>>,
}

#[derive(Debug)]
struct Window {
    calls: u32,
    period: Duration,
    started: Instant,
    used: u32,
}

impl RateLimitLayer {
    /// `calls` per `period`.
    pub fn new(calls: u32, period: Duration) -> RateLimitLayer {
        RateLimitLayer {
            window: Arc::new(Mutex::new(Window {
                calls,
                period,
                started: Instant::now(),
                used: 0,
            })),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            window: Arc::clone(&self.window),
        }
    }
}

/// The service [`RateLimitLayer`] makes.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    window: Arc<Mutex<Window>>,
}

impl<S> RateLimit<S> {
    /// Takes one call from the current window's budget, if any is left.
    fn take(&self) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if window.started.elapsed() >= window.period {
            window.started = Instant::now();
            window.used = 0;
        }
        if window.used < window.calls {
            window.used += 1;
            true
        } else {
            false
        }
    }
}

impl<S> Service<ServerRequest> for RateLimit<S>
where
    S: Service<ServerRequest, Error = Rejection>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Rejection;
    type Future = BoxedReply<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ServerRequest) -> Self::Future {
        if !self.take() {
            let refusal = Rejection::new(Status::Overloaded, "rate limit reached; try later");
            return Box::pin(async move { Err(refusal) });
        }
        Box::pin(self.inner.call(request))
    }
}
