//! Call deadlines, kept by the connection rather than by a timer per call.
//!
//! A timer per call cost about 8 % of a client's instructions at 128 B (creating it, putting
//! it in tokio's wheel and taking it out again), although nearly every call is answered long
//! before its deadline. Here each pending call carries its deadline, and one task per
//! connection sleeps until the earliest it knows of. A call whose deadline comes sooner than
//! that wakes the task; deadlines mostly come in rising order, so that is rare. When the task
//! wakes it fails the calls whose deadline has passed and tells the server, as dropping the
//! call would, and sleeps until the earliest deadline left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::connection::Shared;
use crate::protocol::{Frame, Kind};
use crate::RpcError;

/// A call waiting for its reply.
pub(super) struct Waiting {
    /// Where the reply, or why there is none, goes.
    pub(super) reply: oneshot::Sender<Result<Frame, RpcError>>,
    /// When the call stops waiting; `None` for never.
    pub(super) expires: Option<Instant>,
    /// The budget the caller gave, for the error.
    pub(super) budget: Duration,
}

/// Runs until the connection closes, failing each call whose deadline passes.
pub(super) async fn watch(shared: Arc<Shared>) {
    loop {
        let next = shared.lock_pending().next_expiry;
        match next {
            None => tokio::select! {
                _ = shared.sooner_deadline.notified() => {}
                _ = shared.closed.cancelled() => return,
            },
            Some(at) => tokio::select! {
                // Everything due by `at` is expired, even if the clock reads a hair earlier
                // (tokio's clock may run ahead of std's, as in tests with paused time): the
                // task would otherwise wake again at once for the same calls.
                _ = tokio::time::sleep_until(at.into()) => expire(&shared, at.max(Instant::now())),
                _ = shared.sooner_deadline.notified() => {}
                _ = shared.closed.cancelled() => return,
            },
        }
    }
}

/// Fails every call due by `now`, tells the server, and notes the earliest deadline left.
fn expire(shared: &Shared, now: Instant) {
    let expired: Vec<(u64, Waiting)> = {
        let mut pending = shared.lock_pending();
        let expired = pending
            .calls
            .extract_if(|_, waiting| waiting.expires.is_some_and(|at| at <= now))
            .collect();
        pending.next_expiry = pending
            .calls
            .values()
            .filter_map(|waiting| waiting.expires)
            .min();
        expired
    };
    for (id, waiting) in expired {
        let _ = waiting.reply.send(Err(RpcError::DeadlineExceeded {
            deadline: waiting.budget,
        }));
        let _ = shared.writer.send(&Frame::control(Kind::Cancel, id));
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use bytestring::ByteString;
    use futures::StreamExt;
    use tokio::net::TcpListener;
    use tokio_util::codec::FramedRead;

    use super::*;
    use crate::call::{Call, Deadline};
    use crate::protocol::{Codec, FrameCodec};
    use crate::transport::connection::Connection;
    use crate::transport::Settings;

    /// A provider that reads every frame and answers none: what is sent to it arrives on
    /// the returned channel.
    async fn silent_provider() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Frame>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut frames = FramedRead::new(stream, FrameCodec::default());
            while let Some(Ok(frame)) = frames.next().await {
                let _ = tx.send(frame);
            }
        });
        (addr, rx)
    }

    fn settings() -> Settings {
        Settings {
            connect_timeout: Duration::from_secs(5),
            max_frame: 1024 * 1024,
            // No pings: only the deadline may end a call here.
            ping_interval: Duration::ZERO,
            ping_timeout: Duration::from_secs(60),
            reconnect_backoff: crate::defaults::RECONNECT_BACKOFF,
        }
    }

    fn call(budget: Duration) -> Call {
        Call {
            service_key: ByteString::from_static("t.Svc:1"),
            method_name: ByteString::from_static("wait"),
            idempotent: false,
            codec: Codec::Bincode,
            body: Bytes::new(),
            deadline: Deadline::after(Some(budget)),
            budget,
            hash_key: None,
            metadata: Bytes::new(),
            reply_metadata: None,
        }
    }

    /// A call queued after one with a later deadline still ends at its own: it wakes the
    /// connection's expiry task, which was asleep until the later one. The server is told
    /// to cancel it, and the other call keeps waiting.
    #[tokio::test]
    async fn a_sooner_deadline_ends_its_call_first_and_cancels_it_on_the_server() {
        let (addr, mut arrived) = silent_provider().await;
        let connection = Connection::connect(addr, &settings(), None).await.unwrap();
        let long = call(Duration::from_secs(3600));
        let short = call(Duration::from_millis(50));
        let mut long_call = Box::pin(connection.send(&long));
        // The long call is queued first, so the expiry task sleeps until its deadline.
        assert!(futures::poll!(&mut long_call).is_pending());
        let first = arrived.recv().await.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(30), connection.send(&short))
            .await
            .expect("the short call did not end at its deadline");
        match ended {
            Err(RpcError::DeadlineExceeded { deadline }) => {
                assert_eq!(deadline, Duration::from_millis(50))
            }
            other => panic!("expected the short call's deadline to pass, got {other:?}"),
        }
        let second = arrived.recv().await.unwrap();
        let cancel = arrived.recv().await.unwrap();
        assert_eq!(cancel.kind, Kind::Cancel);
        assert_eq!(cancel.id, second.id, "the cancel names the expired call");
        assert_ne!(cancel.id, first.id);
        assert!(
            futures::poll!(&mut long_call).is_pending(),
            "the call with the later deadline ended too"
        );
    }
}
