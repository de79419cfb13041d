//! Endpoint failover: one etcd client per endpoint, and requests that move on to the next
//! endpoint when the one in use is down.
//!
//! etcd-client balances over its endpoints but does not retry: with one member of three dead,
//! about a quarter of its requests fail with `Unavailable`. Here every request goes first to
//! the endpoint that last answered, and a transport error, an `Unavailable` (which includes
//! "no leader") or a timeout sends it on to the next one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use rpc_core::registry::RegistryError;

use super::access::{self, is_auth_refused};
use super::error::{is_retryable, Failure, BACKEND};
use crate::credentials::Credentials;
use crate::options::RegistryOptions;

/// How often HTTP/2 pings check an otherwise quiet connection. etcd answers pings more often
/// than every 5 s with GOAWAY, so stay above that.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// The first pause between rounds over all endpoints.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between rounds.
const MAX_PAUSE: Duration = Duration::from_millis(400);

/// The outcome of one round over the endpoints.
enum Pass<T> {
    /// An endpoint answered, with a value or a refusal.
    Done(Result<T, Failure>),
    /// Every endpoint failed; what each one saw.
    AllFailed(Vec<String>),
}

/// Why an endpoint gave no auth token.
enum AuthError {
    /// etcd refused the user or password; no other endpoint will accept them.
    Refused(Failure),
    /// No answer; another endpoint may give one.
    NoAnswer(String),
}

/// One endpoint and its client.
struct Member {
    address: String,
    client: Client,
    /// Whether this client holds an auth token (always `true` without credentials).
    authenticated: AtomicBool,
}

/// The etcd endpoints of one registry client.
pub(crate) struct Endpoints {
    members: Vec<Member>,
    /// Index of the endpoint that answered last; requests start there.
    preferred: AtomicUsize,
    request_timeout: Duration,
    label: String,
    /// The etcd user, if any; `Debug` hides the password.
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("endpoints", &self.label)
            .field("preferred", &self.preferred.load(Ordering::Relaxed))
            .finish()
    }
}

impl Endpoints {
    /// Makes one client per endpoint. Connections are opened lazily, on first use, so this
    /// does not fail when etcd is down; only a malformed endpoint is an error here.
    pub(crate) async fn connect(
        addresses: &[String],
        options: &RegistryOptions,
    ) -> Result<Endpoints, RegistryError> {
        let label = addresses.join(",");
        let mut members = Vec::with_capacity(addresses.len());
        for address in addresses {
            let connect_options = ConnectOptions::new()
                .with_connect_timeout(options.connect_timeout)
                .with_keep_alive(PING_INTERVAL, options.request_timeout)
                .with_keep_alive_while_idle(false)
                .with_require_leader(true);
            let connect_options = access::secure(connect_options, options, &label)?;
            let url = format!("{}://{address}", access::scheme(options));
            let client = Client::connect([url.as_str()], Some(connect_options))
                .await
                .map_err(|e| RegistryError::Unavailable {
                    registry: BACKEND,
                    endpoints: label.clone(),
                    message: format!("cannot set up a client for {address}: {e}"),
                })?;
            members.push(Member {
                address: address.clone(),
                client,
                authenticated: AtomicBool::new(options.credentials.is_none()),
            });
        }
        if members.is_empty() {
            return Err(RegistryError::Unavailable {
                registry: BACKEND,
                endpoints: label,
                message: "no endpoints given".into(),
            });
        }
        Ok(Endpoints {
            members,
            preferred: AtomicUsize::new(0),
            request_timeout: options.request_timeout,
            label,
            credentials: options.credentials.clone(),
        })
    }

    /// The endpoints, comma separated, for messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs one request for a caller of the registry API, starting with the endpoint that
    /// answered last and moving on to the next one on a transport error, `Unavailable` or
    /// timeout. Each attempt is bounded by the request timeout; when every endpoint failed,
    /// the round is repeated (with short pauses) until the request timeout has passed since
    /// the first attempt, so a leader election does not fail the call. Requests given here
    /// must be safe to repeat.
    pub(crate) async fn call<T, F, Fut>(&self, request: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.run(request, self.request_timeout, true).await
    }

    /// Like [`Endpoints::call`], but one round over the endpoints only, each attempt bounded
    /// by `attempt_timeout`: for the background tasks, which retry with their own backoff and
    /// must notice an outage (or a member that hangs) well within a lease's TTL.
    pub(crate) async fn call_once<T, F, Fut>(
        &self,
        attempt_timeout: Duration,
        request: F,
    ) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.run(request, attempt_timeout, false).await
    }

    /// The request timeout: the bound on each attempt of [`Endpoints::call`].
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Moves the preferred endpoint on by one, after a stream on it broke or hung, so the
    /// next request starts elsewhere. A dead endpoint is skipped anyway; this is for one that
    /// accepts requests but does not answer them.
    pub(crate) fn demote(&self) {
        let count = self.members.len();
        let current = self.preferred.load(Ordering::Relaxed);
        let _ = self.preferred.compare_exchange(
            current,
            (current + 1) % count,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    async fn run<T, F, Fut>(
        &self,
        mut request: F,
        attempt_timeout: Duration,
        persist: bool,
    ) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let began = Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            match self.one_pass(&mut request, attempt_timeout).await {
                Pass::Done(result) => return result,
                Pass::AllFailed(seen) => {
                    // During a leader election every member answers "no leader" for a second
                    // or two: go round again while the request's time budget lasts.
                    if !persist || began.elapsed() + pause >= self.request_timeout {
                        return Err(Failure::Unreachable {
                            endpoints: self.label.clone(),
                            message: seen.join("; "),
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Tries each endpoint once, starting with the preferred one.
    async fn one_pass<T, F, Fut>(&self, request: &mut F, attempt_timeout: Duration) -> Pass<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let count = self.members.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let mut seen = Vec::new();
        for step in 0..count {
            let index = (start + step) % count;
            let member = &self.members[index];
            match self.authenticate(member, attempt_timeout).await {
                Ok(()) => {}
                Err(AuthError::Refused(refused)) => return Pass::Done(Err(refused)),
                Err(AuthError::NoAnswer(why)) => {
                    seen.push(format!("{}: authentication: {why}", member.address));
                    continue;
                }
            }
            let attempt = tokio::time::timeout(attempt_timeout, request(member.client.clone()));
            match attempt.await {
                Ok(Ok(value)) => {
                    self.prefer(index, start);
                    return Pass::Done(Ok(value));
                }
                Ok(Err(e)) if is_retryable(&e) => {
                    tracing::debug!(endpoint = %member.address, error = %e, "etcd request failed; trying the next endpoint");
                    seen.push(format!("{}: {e}", member.address));
                }
                Ok(Err(e)) if self.credentials.is_none() && access::needs_user(&e) => {
                    return Pass::Done(Err(Failure::Refused {
                        endpoint: member.address.clone(),
                        message: format!(
                            "{e}: this etcd has auth enabled; give a user \
                             (etcd://user:password@host:port, or registry.username with \
                             registry.password_file or RPC_REGISTRY_PASSWORD)"
                        ),
                    }));
                }
                Ok(Err(e)) => {
                    // The endpoint answered; the request itself was refused.
                    self.prefer(index, start);
                    return Pass::Done(Err(Failure::Rejected(e)));
                }
                Err(_) => {
                    tracing::debug!(endpoint = %member.address, "etcd request timed out; trying the next endpoint");
                    seen.push(format!(
                        "{}: no answer within {attempt_timeout:?}",
                        member.address
                    ));
                }
            }
        }
        Pass::AllFailed(seen)
    }

    /// Fails with the refusal when etcd refuses the user or password; succeeds without a
    /// request once any endpoint has authenticated, and leaves other failures (no answer) to
    /// the requests that follow.
    pub(crate) async fn check_credentials(&self) -> Result<(), Failure> {
        let authenticated = |m: &Member| m.authenticated.load(Ordering::Relaxed);
        if self.credentials.is_none() || self.members.iter().any(authenticated) {
            return Ok(());
        }
        for member in &self.members {
            match self.authenticate(member, self.request_timeout).await {
                Err(AuthError::Refused(failure)) => return Err(failure),
                Err(AuthError::NoAnswer(_)) => continue,
                Ok(()) => return Ok(()),
            }
        }
        Ok(())
    }

    /// Gets `member` an auth token if it needs one and has none.
    async fn authenticate(&self, member: &Member, timeout: Duration) -> Result<(), AuthError> {
        let Some(credentials) = &self.credentials else {
            return Ok(());
        };
        if member.authenticated.load(Ordering::Relaxed) {
            return Ok(());
        }
        let user = Some((
            credentials.username().unwrap_or_default().to_string(),
            credentials.password().to_string(),
        ));
        let mut client = member.client.clone();
        match tokio::time::timeout(timeout, client.update_user(user)).await {
            Ok(Ok(())) => {
                member.authenticated.store(true, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) if is_auth_refused(&e) => {
                tracing::warn!(endpoint = %member.address, user = credentials.username().unwrap_or_default(), error = %e, "etcd refused the user name or password");
                Err(AuthError::Refused(Failure::Refused {
                    endpoint: member.address.clone(),
                    message: e.to_string(),
                }))
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %member.address, error = %e, "etcd authentication failed; trying the next endpoint");
                Err(AuthError::NoAnswer(e.to_string()))
            }
            Err(_) => Err(AuthError::NoAnswer(format!("no answer within {timeout:?}"))),
        }
    }

    fn prefer(&self, index: usize, previous: usize) {
        // Only the first request to find a new endpoint switches (and logs).
        if index != previous
            && self
                .preferred
                .compare_exchange(previous, index, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::info!(
                endpoint = %self.members[index].address,
                was = %self.members[previous].address,
                "etcd: switched to another endpoint"
            );
        }
    }
}
