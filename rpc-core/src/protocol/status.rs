//! Response status codes (the `status` byte of a frame).

use std::fmt;

/// The outcome a response frame reports. Requests carry [`Status::Ok`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// The body holds the return value.
    Ok = 0,
    /// The handler failed (for example it panicked); the body is a UTF-8 message.
    ApplicationError = 1,
    /// No service with the requested key is served here.
    UnknownService = 2,
    /// The service has no method of that name.
    UnknownMethod = 3,
    /// The body (the argument tuple) does not decode, or the frame could not be parsed.
    BadRequest = 4,
    /// The deadline passed before the handler finished; the handler was cancelled.
    DeadlineExceeded = 5,
    /// The server refused the call because a limit was reached.
    Overloaded = 6,
    /// The server is shutting down and accepts no new calls.
    ShuttingDown = 7,
    /// Something went wrong inside the server (for example the reply did not encode).
    Internal = 8,
    /// The call carries no credentials, or credentials the server does not accept (for
    /// example a middleware found no `authorization`). Not retried: another provider would
    /// answer the same.
    Unauthenticated = 9,
    /// The caller is known but may not make this call. Not retried.
    PermissionDenied = 10,
    /// The handler ran, but its reply is over the frame limit; not retried, since running the
    /// call again would run the handler again.
    ResponseTooLarge = 11,
}

impl Status {
    /// Parses a status byte; `None` for a code the protocol does not define.
    pub fn from_u8(code: u8) -> Option<Status> {
        Some(match code {
            0 => Status::Ok,
            1 => Status::ApplicationError,
            2 => Status::UnknownService,
            3 => Status::UnknownMethod,
            4 => Status::BadRequest,
            5 => Status::DeadlineExceeded,
            6 => Status::Overloaded,
            7 => Status::ShuttingDown,
            8 => Status::Internal,
            9 => Status::Unauthenticated,
            10 => Status::PermissionDenied,
            11 => Status::ResponseTooLarge,
            _ => return None,
        })
    }

    /// The status byte on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Status::Ok => "ok",
            Status::ApplicationError => "application error",
            Status::UnknownService => "unknown service",
            Status::UnknownMethod => "unknown method",
            Status::BadRequest => "bad request",
            Status::DeadlineExceeded => "deadline exceeded",
            Status::Overloaded => "overloaded",
            Status::ShuttingDown => "shutting down",
            Status::Internal => "internal error",
            Status::Unauthenticated => "unauthenticated",
            Status::PermissionDenied => "permission denied",
            Status::ResponseTooLarge => "response too large",
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Codec, Frame};

    /// Statuses 9 and 10 parse, print and are not retried.
    #[test]
    fn unauthenticated_and_permission_denied_are_9_and_10() {
        for (code, status, text) in [
            (9, Status::Unauthenticated, "unauthenticated"),
            (10, Status::PermissionDenied, "permission denied"),
        ] {
            assert_eq!(Status::from_u8(code), Some(status));
            assert_eq!(status.as_u8(), code);
            assert_eq!(status.to_string(), text);
            let error = crate::RpcError::Status {
                status,
                message: String::new(),
                service: "s:1".into(),
                method: "m".into(),
                addr: ([127, 0, 0, 1], 1).into(),
            };
            assert!(!error.is_retryable(true), "{status} must not be retried");
        }
    }

    /// Status 11 on the wire, byte for byte (docs/protocol.md, status codes).
    #[test]
    fn response_too_large_is_byte_11() {
        assert_eq!(Status::from_u8(11), Some(Status::ResponseTooLarge));
        let mut wire = bytes::BytesMut::new();
        Frame::error(7, Codec::Bincode, Status::ResponseTooLarge, "big")
            .encode(&mut wire)
            .unwrap();
        let expected: [u8; 31] = [
            0, 0, 0, 27, 0x52, 0x50, 1, 1, 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0,
            0, 0, b'b', b'i', b'g',
        ];
        assert_eq!(&wire[..], &expected[..]);
    }
}
