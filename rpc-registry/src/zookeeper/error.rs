//! Turning zookeeper-client errors into [`RegistryError`]s that name the backend, the key and
//! the cause, and bounding every request by the request timeout.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use rpc_core::registry::RegistryError;
use zookeeper_client as zk;

/// The backend's name in messages.
pub(crate) const REGISTRY: &str = "zookeeper";

/// Runs one ZooKeeper request, failing with [`zk::Error::Timeout`] after `limit`.
pub(crate) async fn within<T>(
    limit: Duration,
    request: impl Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    tokio::time::timeout(limit, request)
        .await
        .unwrap_or(Err(zk::Error::Timeout))
}

/// Whether an error means "ZooKeeper is not reachable right now" rather than "this request
/// is wrong".
pub(crate) fn is_unavailable(error: &zk::Error) -> bool {
    matches!(
        error,
        zk::Error::ConnectionLoss
            | zk::Error::Timeout
            | zk::Error::SessionExpired
            | zk::Error::SessionMoved
            | zk::Error::ClientClosed
            | zk::Error::NoHosts
    )
}

/// An error for operation `op` on `key`.
pub(crate) fn op_error(op: &'static str, key: impl Display, error: impl Display) -> RegistryError {
    RegistryError::Operation {
        registry: REGISTRY,
        op,
        key: key.to_string(),
        message: error.to_string(),
    }
}

/// An error for operation `op` on `key`, reported as [`RegistryError::Unavailable`] when
/// ZooKeeper could not be reached.
pub(crate) fn request_error(
    op: &'static str,
    key: impl Display,
    endpoints: &str,
    error: &zk::Error,
) -> RegistryError {
    if is_unavailable(error) {
        RegistryError::Unavailable {
            registry: REGISTRY,
            endpoints: endpoints.to_string(),
            message: format!("{op} {key}: {error}"),
        }
    } else {
        op_error(op, key, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_backend_key_and_cause() {
        let e = request_error("discover", "/rpc/a:1", "h:1", &zk::Error::NoAuth).to_string();
        assert!(
            e.contains("zookeeper") && e.contains("/rpc/a:1") && e.contains("discover"),
            "{e}"
        );
        let e =
            request_error("discover", "/rpc/a:1", "h:1", &zk::Error::ConnectionLoss).to_string();
        assert!(
            e.contains("zookeeper at h:1") && e.contains("unreachable"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn requests_are_bounded() {
        let slow = std::future::pending::<Result<(), zk::Error>>();
        let result = within(Duration::from_millis(10), slow).await;
        assert_eq!(result, Err(zk::Error::Timeout));
    }
}
