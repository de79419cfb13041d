//! Call metadata from the client's side: per-call entries (`call_with`, `call_raw`) and the
//! client's defaults (`rpc-caller`) reach the handler, the handler's reply metadata reaches
//! the caller, bad metadata fails before anything is sent, and a call made inside a served
//! call passes its `rpc-tag` and trace on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rpc_core::call::ResponseMetadata;
use rpc_core::protocol::{keys, Codec};
use rpc_core::{CallOptions, Client, RpcError, Server, ServerHandle};

#[rpc_core::service(name = "tests.Echo", version = "1.0.0")]
trait Echo {
    /// The value of metadata `key` as the handler saw it ("-" when absent); the reply
    /// carries `echoed-key = key`.
    async fn seen(&self, key: String) -> String;
    /// Calls `seen(key)` on the downstream server with the options given, from inside this
    /// served call.
    async fn forward(&self, key: String, tag: Option<String>) -> String;
}

#[derive(Clone, Default)]
struct Handler {
    calls: Arc<AtomicUsize>,
    downstream: Option<EchoClient>,
}

impl Echo for Handler {
    async fn seen(&self, key: String) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let call = rpc_core::context::current().expect("a served call");
        call.set_response_metadata("echoed-key", key.clone())
            .unwrap();
        call.metadata().get_str(&key).unwrap_or("-").to_string()
    }

    async fn forward(&self, key: String, tag: Option<String>) -> String {
        let downstream = self.downstream.as_ref().expect("a downstream");
        let options = match tag {
            Some(tag) => CallOptions::new().with_metadata(keys::TAG, tag),
            None => CallOptions::new(),
        };
        match downstream.call_with(&options).seen(key).await {
            Ok(seen) => seen,
            Err(e) => format!("error: {e}"),
        }
    }
}

async fn serve(handler: Handler) -> ServerHandle {
    Server::builder()
        .bind("127.0.0.1:0")
        .serve(EchoServer::new(handler))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn per_call_and_default_metadata_reach_the_handler_and_reply_metadata_comes_back() {
    let server = serve(Handler::default()).await;
    let client = Client::builder()
        .caller("billing")
        .metadata(keys::TAG, "blue")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let echo = EchoClient::new(client.clone());

    // The client's defaults on a plain call.
    assert_eq!(echo.seen(keys::CALLER.into()).await.unwrap(), "billing");
    assert_eq!(echo.seen(keys::TAG.into()).await.unwrap(), "blue");

    // A per-call entry wins over the default; the reply's metadata lands in the slot.
    let reply = ResponseMetadata::new();
    let options = CallOptions::new()
        .with_metadata(keys::TAG, "gray")
        .with_metadata("tenant", "acme")
        .with_response_metadata(&reply);
    let one_call = echo.call_with(&options);
    assert_eq!(one_call.seen(keys::TAG.into()).await.unwrap(), "gray");
    assert_eq!(reply.take().get_str("echoed-key"), Some(keys::TAG));
    assert_eq!(one_call.seen("tenant".into()).await.unwrap(), "acme");
    assert_eq!(reply.get().get_str("echoed-key"), Some("tenant"));
    // The stub's own calls still go without the per-call entries.
    assert_eq!(echo.seen("tenant".into()).await.unwrap(), "-");

    // The same through call_raw, with JSON.
    let reply = ResponseMetadata::new();
    let options = CallOptions::new()
        .with_metadata("tenant", "raw")
        .with_response_metadata(&reply);
    let body = client
        .call_raw(
            &EchoClient::DESCRIPTOR.service_key(),
            "seen",
            Codec::Json,
            bytes::Bytes::from_static(br#"["tenant"]"#),
            true,
            &options,
        )
        .await
        .unwrap();
    assert_eq!(&body[..], br#""raw""#);
    assert_eq!(reply.get().get_str("echoed-key"), Some("tenant"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_metadata_fails_with_a_clear_error_and_nothing_is_sent() {
    let handler = Handler::default();
    let calls = Arc::clone(&handler.calls);
    let server = serve(handler).await;
    let addr = server.local_addr().to_string();
    let echo = EchoClient::connect(&addr).await.unwrap();

    let uppercase = CallOptions::new().with_metadata("Tenant", "acme");
    let too_big = CallOptions::new().with_metadata("big", "x".repeat(16 * 1024));
    let mut too_many = CallOptions::new();
    for i in 0..65 {
        too_many = too_many.with_metadata(format!("k{i}"), "v");
    }
    for (options, expected) in [
        (&uppercase, "Tenant"),
        (&too_big, "at most 16384"),
        (&too_many, "at most 64"),
    ] {
        let error = echo.call_with(options).seen("k".into()).await.unwrap_err();
        assert!(matches!(error, RpcError::BadMetadata { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(expected) && message.contains("tests.Echo:1.0.0.seen"),
            "{message}"
        );
    }
    // A bad client-wide default fails every call the same way.
    let bad_default = EchoClient::new(
        Client::builder()
            .metadata("no spaces", "x")
            .connect(&addr)
            .await
            .unwrap(),
    );
    let error = bad_default.seen("k".into()).await.unwrap_err();
    assert!(matches!(error, RpcError::BadMetadata { .. }), "{error:?}");

    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a call with bad metadata was sent"
    );
    // The connection is fine for good calls.
    assert_eq!(echo.seen("k".into()).await.unwrap(), "-");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn rpc_tag_and_trace_are_inherited_through_a_served_call() {
    let last = serve(Handler::default()).await;
    let downstream = EchoClient::connect(&last.local_addr().to_string())
        .await
        .unwrap();
    let middle = serve(Handler {
        downstream: Some(downstream),
        ..Handler::default()
    })
    .await;
    let echo = EchoClient::connect(&middle.local_addr().to_string())
        .await
        .unwrap();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let options = CallOptions::new()
        .with_metadata(keys::TAG, "gray")
        .with_metadata(keys::TRACEPARENT, traceparent);
    let tagged = echo.call_with(&options);
    // The downstream call, made inside the served one, carries the incoming tag ...
    assert_eq!(
        tagged.forward(keys::TAG.into(), None).await.unwrap(),
        "gray"
    );
    // ... unless it sets its own.
    assert_eq!(
        tagged
            .forward(keys::TAG.into(), Some("blue".into()))
            .await
            .unwrap(),
        "blue"
    );
    // The trace continues: same trace id, a new parent span id.
    let sent = tagged
        .forward(keys::TRACEPARENT.into(), None)
        .await
        .unwrap();
    let parsed = rpc_core::call::TraceParent::parse(&sent).expect("a traceparent downstream");
    assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(sent, traceparent);
    // Without a tag upstream, none appears downstream.
    assert_eq!(echo.forward(keys::TAG.into(), None).await.unwrap(), "-");
    middle.shutdown().await.unwrap();
    last.shutdown().await.unwrap();
}

/// Reads one frame's raw bytes, length prefix included.
async fn raw_frame(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut frame = len.to_vec();
        frame.resize(4 + u32::from_be_bytes(len) as usize, 0);
        stream.read_exact(&mut frame[4..]).await.unwrap();
        frame
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("a request within 10 s")
}

#[tokio::test]
async fn a_call_without_metadata_sends_the_old_frame_byte_for_byte() {
    use rpc_core::protocol::{Frame, Metadata, Status};
    use tests::raw::{encode, request};
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::builder()
        .deadline(None)
        .direct(listener.local_addr().unwrap());
    let echo = EchoClient::new(client);
    let calls = tokio::spawn(async move {
        let plain = echo.seen("k".into()).await;
        let options = CallOptions::new().with_metadata("tenant", "acme");
        let with_metadata = echo.call_with(&options).seen("k".into()).await;
        (plain, with_metadata)
    });
    let (mut stream, _) = listener.accept().await.unwrap();
    let key = EchoClient::DESCRIPTOR.key;

    let plain = raw_frame(&mut stream).await;
    let expected = request(1, key, "seen", 0, &("k".to_string(),));
    assert_eq!(plain, &encode(&expected)[..], "flags must stay 0, no block");
    assert_eq!(&plain[10..12], &[0, 0]);
    let answer = Frame::response(
        1,
        Codec::Bincode,
        Status::Ok,
        Codec::Bincode.encode(&"-").unwrap(),
    );
    stream.write_all(&encode(&answer)).await.unwrap();

    let tagged = raw_frame(&mut stream).await;
    let mut expected = request(2, key, "seen", 0, &("k".to_string(),));
    let mut metadata = Metadata::new();
    metadata.insert("tenant", "acme").unwrap();
    expected.metadata = metadata.encode();
    assert_eq!(tagged, &encode(&expected)[..]);
    assert_eq!(&tagged[10..12], &[0, 1], "flag bit 0 set");
    let answer = Frame::response(
        2,
        Codec::Bincode,
        Status::Ok,
        Codec::Bincode.encode(&"acme").unwrap(),
    );
    stream.write_all(&encode(&answer)).await.unwrap();

    let (plain, with_metadata) = calls.await.unwrap();
    assert_eq!(
        (plain.unwrap(), with_metadata.unwrap()),
        ("-".into(), "acme".into())
    );
}
