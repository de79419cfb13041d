//! How an etcd request failed, and which failures another endpoint (or a later retry) may fix.

use rpc_core::registry::RegistryError;
use tonic::Code;

/// The backend's name in errors and logs.
pub(crate) const BACKEND: &str = "etcd";

/// Why a request to etcd failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No endpoint answered: every one was down, timed out, or had no leader.
    Unreachable {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// What the last attempt saw.
        message: String,
    },
    /// An endpoint answered with an error that another endpoint would repeat.
    Rejected(etcd_client::Error),
    /// An endpoint refused the user name or password.
    Refused {
        /// The endpoint, `host:port`.
        endpoint: String,
        /// What etcd said.
        message: String,
    },
}

impl Failure {
    /// Whether etcd says the lease no longer exists (expired, revoked, or etcd was wiped).
    pub(crate) fn lease_gone(&self) -> bool {
        match self {
            Failure::Rejected(e) => is_lease_gone(e),
            Failure::Unreachable { .. } | Failure::Refused { .. } => false,
        }
    }

    /// The same failure again, for each of the claims that shared one failed transaction.
    pub(crate) fn duplicate(&self) -> Failure {
        use etcd_client::Error as E;
        match self {
            Failure::Unreachable { endpoints, message } => Failure::Unreachable {
                endpoints: endpoints.clone(),
                message: message.clone(),
            },
            Failure::Rejected(E::GRpcStatus(status)) => {
                Failure::Rejected(E::GRpcStatus(status.clone()))
            }
            Failure::Rejected(E::LeaseKeepAliveError(message)) => {
                Failure::Rejected(E::LeaseKeepAliveError(message.clone()))
            }
            Failure::Rejected(other) => Failure::Rejected(E::InvalidArgs(other.to_string())),
            Failure::Refused { endpoint, message } => Failure::Refused {
                endpoint: endpoint.clone(),
                message: message.clone(),
            },
        }
    }

    /// Whether the request may have taken effect although no answer came back.
    pub(crate) fn outcome_unknown(&self) -> bool {
        matches!(self, Failure::Unreachable { .. })
    }

    /// The error a caller of the [`rpc_core::Registry`] API sees.
    pub(crate) fn into_error(self, op: &'static str, key: &str) -> RegistryError {
        match self {
            Failure::Unreachable { endpoints, message } => RegistryError::Unavailable {
                registry: BACKEND,
                endpoints,
                message: format!("{op} {key}: {message}"),
            },
            Failure::Rejected(e) => RegistryError::Operation {
                registry: BACKEND,
                op,
                key: key.to_string(),
                message: e.to_string(),
            },
            Failure::Refused { endpoint, message } => RegistryError::Refused {
                registry: BACKEND,
                endpoint,
                message,
            },
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable { endpoints, message } => {
                write!(f, "no etcd endpoint answered ({endpoints}): {message}")
            }
            Failure::Rejected(e) => write!(f, "etcd refused: {e}"),
            Failure::Refused { endpoint, message } => {
                write!(f, "etcd at {endpoint} refused the credentials: {message}")
            }
        }
    }
}

/// Whether an error is about the transport or the cluster's health rather than the request,
/// so that the same request may succeed on another endpoint.
pub(crate) fn is_retryable(error: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match error {
        E::TransportError(_) | E::IoError(_) | E::WatchError(_) | E::Internal(_) => true,
        E::LeaseKeepAliveError(_) => !is_lease_gone(error),
        E::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Internal
                | Code::Aborted
                | Code::ResourceExhausted
        ),
        _ => false,
    }
}

/// Whether an error says the lease does not exist.
fn is_lease_gone(error: &etcd_client::Error) -> bool {
    use etcd_client::Error as E;
    match error {
        // etcd-client's keep-alive reports a TTL of 0 on the first answer like this.
        E::LeaseKeepAliveError(message) => message.contains("not found"),
        // "etcdserver: requested lease not found" (puts, txns, revokes, keep-alives).
        E::GRpcStatus(status) => {
            status.code() == Code::NotFound && status.message().contains("lease not found")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        let unavailable = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("down"));
        assert!(is_retryable(&unavailable));
        let gone = etcd_client::Error::GRpcStatus(tonic::Status::not_found(
            "etcdserver: requested lease not found",
        ));
        assert!(!is_retryable(&gone));
        assert!(Failure::Rejected(gone).lease_gone());
        let ka = etcd_client::Error::LeaseKeepAliveError("lease not found".into());
        assert!(!is_retryable(&ka));
        assert!(Failure::Rejected(ka).lease_gone());
        let bad = etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("x"));
        assert!(!is_retryable(&bad));
    }

    #[test]
    fn errors_name_registry_endpoints_and_key() {
        let err = Failure::Unreachable {
            endpoints: "127.0.0.1:1,127.0.0.1:2".into(),
            message: "connection refused".into(),
        }
        .into_error("register", "/rpc/a:1/h:1")
        .to_string();
        for needle in ["etcd", "127.0.0.1:1,127.0.0.1:2", "/rpc/a:1/h:1", "refused"] {
            assert!(err.contains(needle), "{err}");
        }
    }
}
