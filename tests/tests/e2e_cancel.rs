//! A caller that drops its call makes the client send a cancel frame, and the server aborts
//! that handler, and only that one: a second handler of the same kind, on the same
//! connection, not cancelled, is still running afterwards. With no deadline in play, only
//! the cancel can stop a handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_core::{Client, Server};
use tests::wait::{holds_for, wait_until};

#[rpc_core::service(name = "test.Hang")]
pub trait Hang {
    async fn forever(&self, id: u32);
    async fn ping(&self) -> u8;
}

#[derive(Clone, Default)]
struct Impl {
    started: Arc<AtomicUsize>,
    /// The ids of handlers dropped (aborted) before finishing.
    dropped: Arc<Mutex<Vec<u32>>>,
}

impl Impl {
    fn dropped(&self) -> Vec<u32> {
        self.dropped.lock().unwrap().clone()
    }
}

/// Records its id when the handler's future is dropped before it finishes.
struct DropFlag(u32, Arc<Mutex<Vec<u32>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

impl Hang for Impl {
    async fn forever(&self, id: u32) {
        let _flag = DropFlag(id, Arc::clone(&self.dropped));
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }

    async fn ping(&self) -> u8 {
        1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_its_handler_on_the_server() {
    let service = Impl::default();
    let server = Server::builder()
        .idle_timeout(None)
        .serve(HangServer::new(service.clone()))
        .start()
        .await
        .unwrap();
    // No default deadline: the requests carry none, so the server has no timer to fire.
    let client = Client::builder()
        .deadline(None)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let hang = HangClient::new(client);
    let cancelled = tokio::spawn({
        let hang = hang.clone();
        async move { hang.forever(1).await }
    });
    let kept = tokio::spawn({
        let hang = hang.clone();
        async move { hang.forever(2).await }
    });
    wait_until(Duration::from_secs(5), "both handlers to start", || async {
        service.started.load(Ordering::SeqCst) == 2
    })
    .await
    .unwrap();
    assert!(service.dropped().is_empty());

    cancelled.abort(); // the caller gives up: its call future is dropped
    wait_until(
        Duration::from_secs(5),
        "the server to abort the cancelled handler",
        || async { service.dropped() == [1] },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; dropped: {:?}", service.dropped()));
    // The other handler would still be running, and is.
    holds_for(
        Duration::from_millis(300),
        "the uncancelled handler running",
        || async { service.dropped() == [1] },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The connection is still fine.
    assert_eq!(hang.ping().await.unwrap(), 1);
    kept.abort();
    wait_until(Duration::from_secs(5), "the second cancel", || async {
        service.dropped() == [1, 2]
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();
}
