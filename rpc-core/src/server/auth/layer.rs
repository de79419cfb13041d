//! [`AuthLayer`]: the tower layer that checks each call's token and the service's
//! allow-list before anything else runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures::future::Either;
use tokio_util::sync::CancellationToken;

use super::tokens::{Tokens, TokensError};
use super::ServerAuth;
use crate::defaults;
use crate::protocol::{keys, Status};
use crate::server::wire_text::WireText;
use crate::server::{Rejection, ServerRequest};

/// Callers whose last failure time is kept; past it, old entries are dropped.
const MAX_LOGGED_CALLERS: usize = 4096;

/// Checks every call's bearer token and the allow-list of the service it calls.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    tokens: Arc<ArcSwap<Tokens>>,
    allow: BTreeMap<String, BTreeSet<String>>,
    /// When each caller's last failure was logged.
    logged: Mutex<HashMap<String, Instant>>,
}

impl AuthLayer {
    /// Loads the tokens file and re-reads it when it changes, until `stop`.
    pub(crate) fn start(
        auth: &ServerAuth,
        stop: CancellationToken,
    ) -> Result<AuthLayer, TokensError> {
        let (tokens, text) = Tokens::load(&auth.tokens_file)?;
        tracing::info!(file = %auth.tokens_file.display(), callers = tokens.len(), "caller authentication on");
        let tokens = Arc::new(ArcSwap::from_pointee(tokens));
        tokio::spawn(super::reload::watch(
            auth.tokens_file.clone(),
            text,
            Arc::clone(&tokens),
            stop,
        ));
        Ok(AuthLayer {
            shared: Arc::new(Shared {
                tokens,
                allow: auth.allow.clone(),
                logged: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub(crate) struct Auth<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> tower::Service<ServerRequest> for Auth<S>
where
    S: tower::Service<ServerRequest, Response = Bytes, Error = Rejection>,
{
    type Response = Bytes;
    type Error = Rejection;
    type Future = Either<S::Future, std::future::Ready<Result<Bytes, Rejection>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Rejection>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ServerRequest) -> Self::Future {
        match self.shared.check(&request) {
            Ok(()) => Either::Left(self.inner.call(request)),
            Err(rejection) => Either::Right(std::future::ready(Err(rejection))),
        }
    }
}

impl Shared {
    fn check(&self, request: &ServerRequest) -> Result<(), Rejection> {
        let presented = request
            .metadata()
            .get(keys::AUTHORIZATION)
            .and_then(|value| value.strip_prefix(b"Bearer "));
        let tokens = self.tokens.load();
        // A token names the caller; without one, a verified client certificate does.
        let caller = match presented {
            Some(token) => tokens.caller(token),
            None => request.peer_name(),
        };
        let Some(caller) = caller else {
            let why = if presented.is_some() {
                "unknown token"
            } else {
                "no bearer token"
            };
            let peer = request.peer().ip().to_string();
            if self.should_log(&peer) {
                tracing::warn!(peer = %peer, service = %WireText(request.service()), why, "call refused: unauthenticated");
            }
            return Err(Rejection::new(
                Status::Unauthenticated,
                format!(
                    "{why}: send `authorization: Bearer <token>` with a token this provider knows"
                ),
            ));
        };
        if self.allowed(request.service(), caller) {
            return Ok(());
        }
        if self.should_log(caller) {
            tracing::warn!(caller, service = %WireText(request.service()), "call refused: caller not on the service's allow-list");
        }
        Err(Rejection::new(
            Status::PermissionDenied,
            format!(
                "caller {caller:?} may not call {}",
                WireText(request.service())
            ),
        ))
    }

    /// Whether `caller` may call `service` (`name:version`): an entry for the version wins
    /// over one for the name; no entry allows everyone.
    fn allowed(&self, service: &str, caller: &str) -> bool {
        let name = service.rsplit_once(':').map_or(service, |(name, _)| name);
        match self.allow.get(service).or_else(|| self.allow.get(name)) {
            Some(callers) => callers.contains(caller),
            None => true,
        }
    }

    /// Whether a failure of `caller` may be logged now: once per caller per minute.
    fn should_log(&self, caller: &str) -> bool {
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = logged.get(caller) {
            if now.duration_since(*last) < defaults::AUTH_LOG_INTERVAL {
                return false;
            }
        }
        if logged.len() >= MAX_LOGGED_CALLERS {
            logged.retain(|_, last| now.duration_since(*last) < defaults::AUTH_LOG_INTERVAL);
            if logged.len() >= MAX_LOGGED_CALLERS {
                return false;
            }
        }
        logged.insert(caller.to_string(), now);
        true
    }
}
