//! How one attempt on one provider ended, as balancers and ejection see it.

use crate::{RpcError, Status};

/// The result of one attempt, classified for balancing and outlier ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider answered with a value.
    Success,
    /// The provider answered, but with an error (application error, unknown method, ...):
    /// it is alive.
    Error,
    /// The provider refused the call without running it: overloaded, shutting down, goaway,
    /// or the address does not serve this service or method (unknown service / method).
    Rejected,
    /// The provider could not be reached: connect refused or timed out, connection lost.
    Unreachable,
    /// No answer came before the attempt's deadline.
    Timeout,
}

impl Outcome {
    /// Classifies an attempt's error.
    pub fn of_error(error: &RpcError) -> Outcome {
        match error {
            RpcError::Connect { .. }
            | RpcError::ConnectionLost { .. }
            | RpcError::Unresponsive { .. } => Outcome::Unreachable,
            RpcError::GoAway { .. } => Outcome::Rejected,
            RpcError::DeadlineExceeded { .. } => Outcome::Timeout,
            RpcError::Status { status, .. } => match status {
                Status::Overloaded
                | Status::ShuttingDown
                | Status::UnknownService
                | Status::UnknownMethod => Outcome::Rejected,
                Status::DeadlineExceeded => Outcome::Timeout,
                _ => Outcome::Error,
            },
            _ => Outcome::Error,
        }
    }

    /// Classifies an attempt's result.
    pub fn of<T>(result: &Result<T, RpcError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(error) => Outcome::of_error(error),
        }
    }

    /// Whether the provider answered, so the latency measures it.
    pub fn answered(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Error)
    }

    /// Whether a balancer should count this attempt as a cost: anything but a value.
    pub fn is_failure(self) -> bool {
        self != Outcome::Success
    }

    /// Whether this outcome counts towards outlier ejection.
    pub fn is_outlier_failure(self) -> bool {
        matches!(self, Outcome::Unreachable | Outcome::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    #[test]
    fn classifies_errors() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let connect = RpcError::connect(addr, std::io::ErrorKind::ConnectionRefused.into());
        assert_eq!(Outcome::of_error(&connect), Outcome::Unreachable);
        assert_eq!(
            Outcome::of_error(&RpcError::GoAway { addr }),
            Outcome::Rejected
        );
        let timeout = RpcError::DeadlineExceeded {
            deadline: Duration::from_millis(5),
        };
        assert_eq!(Outcome::of_error(&timeout), Outcome::Timeout);
        let status = |status| RpcError::Status {
            status,
            message: String::new(),
            service: "s:1".into(),
            method: "m".into(),
            addr,
        };
        assert_eq!(
            Outcome::of_error(&status(Status::Overloaded)),
            Outcome::Rejected
        );
        assert_eq!(
            Outcome::of_error(&status(Status::ApplicationError)),
            Outcome::Error
        );
        assert_eq!(Outcome::of::<()>(&Ok(())), Outcome::Success);
        for status_ in [Status::UnknownService, Status::UnknownMethod] {
            assert_eq!(Outcome::of_error(&status(status_)), Outcome::Rejected);
        }
        let silent = RpcError::Unresponsive {
            addr,
            silent_for: Duration::from_secs(2),
        };
        assert_eq!(Outcome::of_error(&silent), Outcome::Unreachable);
    }
}
