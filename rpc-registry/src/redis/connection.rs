//! One multiplexed connection to Redis, opened on first use and again after it breaks, and
//! how a failed command becomes a [`RegistryError`].

use std::time::Duration;

use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo};
use rpc_core::registry::RegistryError;
use tokio::sync::Mutex;

use crate::options::RegistryUrl;

/// The backend's name in errors and logs.
pub(crate) const REGISTRY: &str = "redis";

/// Why a Redis command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer: connection refused, dropped or timed out.
    Unreachable(String),
    /// Redis answered with an error (wrong type, no permission, script error, ...).
    Rejected(String),
}

impl Failure {
    fn from_redis(error: &redis::RedisError) -> Failure {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
        {
            Failure::Unreachable(error.to_string())
        } else {
            Failure::Rejected(error.to_string())
        }
    }

    /// The error a caller of the [`rpc_core::Registry`] API sees.
    pub(crate) fn into_error(self, endpoint: &str, op: &'static str, key: &str) -> RegistryError {
        match self {
            Failure::Unreachable(message) => RegistryError::Unavailable {
                registry: REGISTRY,
                endpoints: endpoint.to_string(),
                message: format!("{op} {key}: {message}"),
            },
            Failure::Rejected(message) => RegistryError::Operation {
                registry: REGISTRY,
                op,
                key: key.to_string(),
                message,
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(message) => write!(f, "redis did not answer: {message}"),
            Failure::Rejected(message) => write!(f, "redis refused: {message}"),
        }
    }
}

/// The client side of one Redis server: a shared multiplexed connection for commands, and
/// fresh connections for pub/sub.
pub(crate) struct Connection {
    client: redis::Client,
    /// `host:port`, for messages.
    pub(crate) endpoint: String,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    request_timeout: Duration,
    current: Mutex<Option<MultiplexedConnection>>,
}

impl Connection {
    /// A client for the URL's server, database and credentials; connects on first use.
    pub(crate) fn new(url: &RegistryUrl) -> Result<Connection, RegistryError> {
        let endpoint = url.endpoints.first().cloned().unwrap_or_default();
        let bad = |message: String| RegistryError::BadUrl {
            url: url.original.clone(),
            message,
        };
        let (host, port) = endpoint
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port".into()))?;
        let port: u16 = port.parse().map_err(|_| bad("bad port".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let options = &url.options;
        let mut settings = RedisConnectionInfo::default().set_db(i64::from(options.db));
        if let Some(credentials) = &options.credentials {
            if let Some(user) = credentials.username() {
                settings = settings.set_username(user);
            }
            settings = settings.set_password(credentials.password());
        }
        let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(|e| bad(e.to_string()))?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| bad(e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.request_timeout));
        Ok(Connection {
            client,
            endpoint,
            config,
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            current: Mutex::new(None),
        })
    }

    /// The shared connection, opened now if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, Failure> {
        let mut current = self.current.lock().await;
        if let Some(connection) = current.as_ref() {
            return Ok(connection.clone());
        }
        let opened = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| Failure::from_redis(&e))?;
        *current = Some(opened.clone());
        Ok(opened)
    }

    /// Forgets a connection that failed, so the next command opens a new one.
    async fn forget(&self) {
        *self.current.lock().await = None;
    }

    /// Runs one command (or pipeline); a connection failure drops the connection.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &impl Query,
    ) -> Result<T, Failure> {
        let mut connection = self.connection().await?;
        let result = tokio::time::timeout(self.request_timeout, command.run(&mut connection)).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                let failure = Failure::from_redis(&error);
                if matches!(failure, Failure::Unreachable(_)) {
                    self.forget().await;
                }
                Err(failure)
            }
            Err(_) => {
                self.forget().await;
                Err(Failure::Unreachable(format!(
                    "no answer within {:?}",
                    self.request_timeout
                )))
            }
        }
    }

    /// A new pub/sub connection (each watch has its own).
    pub(crate) async fn pubsub(&self) -> Result<PubSub, Failure> {
        let limit = self.connect_timeout;
        match tokio::time::timeout(limit, self.client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(Failure::from_redis(&error)),
            Err(_) => Err(Failure::Unreachable(format!(
                "no connection within {limit:?}"
            ))),
        }
    }
}

/// A command or a pipeline: what [`Connection::query`] runs.
pub(crate) trait Query: Sync {
    /// Runs it on `connection`.
    fn run<T: FromRedisValue>(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send;
}

impl Query for redis::Cmd {
    fn run<T: FromRedisValue>(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(connection)
    }
}

impl Query for redis::Pipeline {
    fn run<T: FromRedisValue>(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send {
        self.query_async(connection)
    }
}
