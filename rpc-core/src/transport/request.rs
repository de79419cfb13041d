//! A call's request frame, and the size check every request passes before it is sent: a
//! frame the provider would refuse must not reach the socket, where it would close the
//! connection and fail every other call on it.

use crate::call::Call;
use crate::protocol::{Frame, Kind};
use crate::{RpcError, Status};

/// The request frame of `call` (its id is set when it is sent).
pub(super) fn request_frame(call: &Call) -> Frame {
    frame_with_deadline(call, call.deadline.to_wire_ms())
}

/// The request frame of `call` with `deadline_ms` on the wire.
fn frame_with_deadline(call: &Call, deadline_ms: u32) -> Frame {
    Frame {
        kind: Kind::Request,
        codec: call.codec.id(),
        status: Status::Ok,
        flags: 0,
        id: 0,
        deadline_ms,
        service: call.service_key.clone(),
        method: call.method_name.clone(),
        metadata: call.metadata.clone(),
        body: call.body.clone(),
    }
}

/// Refuses a request frame over `max_frame` bytes, naming the call.
pub(super) fn check_size(frame: &Frame, max_frame: usize) -> Result<(), RpcError> {
    let len = frame.encoded_len();
    if len > max_frame {
        return Err(RpcError::RequestTooLarge {
            service: frame.service.to_string(),
            method: frame.method.to_string(),
            len,
            max: max_frame,
        });
    }
    Ok(())
}

/// Checks that `call`'s request fits in `max_frame` bytes, before any provider is chosen.
pub(crate) fn check_request(call: &Call, max_frame: usize) -> Result<(), RpcError> {
    // The deadline field has a fixed width: no need to read the clock for it here.
    check_size(&frame_with_deadline(call, 0), max_frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Deadline;
    use crate::protocol::Codec;
    use bytes::Bytes;
    use bytestring::ByteString;

    #[test]
    fn a_request_over_the_limit_is_refused_with_its_size_and_name() {
        let call = Call {
            service_key: ByteString::from_static("s.Svc:1"),
            method_name: ByteString::from_static("put"),
            idempotent: true,
            codec: Codec::Bincode,
            body: Bytes::from(vec![0u8; 2048]),
            deadline: Deadline::NONE,
            budget: std::time::Duration::MAX,
            hash_key: None,
            metadata: Bytes::new(),
            reply_metadata: None,
        };
        let error = check_request(&call, 1024).unwrap_err();
        assert!(!error.is_retryable(true));
        assert!(error.is_local());
        let message = error.to_string();
        assert!(
            message.contains("s.Svc:1.put") && message.contains("1024"),
            "{message}"
        );
        assert!(check_request(&call, 4096).is_ok());
    }
}
