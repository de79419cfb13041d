//! A caller that drops its call makes the client send a cancel frame, and the server aborts
//! that handler (with no deadline in play, only the cancel can stop it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::{Client, Server};
use tests::wait::wait_until;

#[rpc_core::service(name = "test.Hang")]
pub trait Hang {
    async fn forever(&self);
    async fn ping(&self) -> u8;
}

#[derive(Clone, Default)]
struct Impl {
    started: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

/// Sets the flag when the handler's future is dropped (aborted) before it finishes.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Hang for Impl {
    async fn forever(&self) {
        let _flag = DropFlag(Arc::clone(&self.dropped));
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
    }

    async fn ping(&self) -> u8 {
        1
    }
}

#[tokio::test]
async fn dropping_a_call_cancels_its_handler_on_the_server() {
    let service = Impl::default();
    let server = Server::builder()
        .serve(HangServer::new(service.clone()))
        .start()
        .await
        .unwrap();
    // No default deadline: the request carries none, so the server has no timer to fire.
    let client = Client::builder()
        .deadline(None)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let hang = HangClient::new(client);
    let call = tokio::spawn({
        let hang = hang.clone();
        async move { hang.forever().await }
    });
    wait_until(Duration::from_secs(5), "the handler to start", || async {
        service.started.load(Ordering::SeqCst) == 1
    })
    .await
    .unwrap();
    assert!(!service.dropped.load(Ordering::SeqCst));

    call.abort(); // the caller gives up: its call future is dropped
    wait_until(
        Duration::from_secs(5),
        "the server to abort the handler",
        || async { service.dropped.load(Ordering::SeqCst) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The connection is still fine.
    assert_eq!(hang.ping().await.unwrap(), 1);
    server.shutdown().await.unwrap();
}
