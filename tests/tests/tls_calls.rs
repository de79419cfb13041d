//! TLS on calls, with certificates made at test time: TLS and mutual TLS calls succeed; a
//! client without a certificate against mutual TLS, a wrong CA, an expired certificate, a
//! wrong server name, and plaintext <-> TLS in both directions each fail in under a second
//! with an error naming the cause. A TLS provider registered in a real etcd is found and
//! called by a consumer configured with nothing but the CA.

use std::future::Future;
use std::time::{Duration, Instant};

use example_provider::GreeterClient;
use rpc_core::server::ServerTls;
use rpc_core::{Client, ClientBuilder, RpcError, Server, ServerHandle};
use tests::certs::{CertFiles, TestCa};
use tests::etcd::EtcdServer;
use tests::servers::example_server;

/// The bound the issue sets on every failure here.
const AT_ONCE: Duration = Duration::from_secs(1);

async fn tls_server(files: &CertFiles, client_ca: Option<&std::path::Path>) -> ServerHandle {
    let mut tls = ServerTls::new(&files.cert, &files.key);
    if let Some(ca) = client_ca {
        tls = tls.client_ca(ca);
    }
    example_server(Server::builder().tls(tls)).await
}

/// Connects with `builder` and calls `hello`: the error, which must come within [`AT_ONCE`].
async fn fails_at_once(builder: ClientBuilder, server: &ServerHandle) -> RpcError {
    let addr = server.local_addr().to_string();
    within_a_second(async move {
        let client = builder.connect(&addr).await?;
        GreeterClient::new(client).hello("eve".into()).await
    })
    .await
    .expect_err("the call must fail")
}

async fn within_a_second<T>(
    work: impl Future<Output = Result<T, RpcError>>,
) -> Result<T, RpcError> {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("the call hung");
    let took = started.elapsed();
    assert!(took < AT_ONCE, "took {took:?}, not at once");
    result
}

fn assert_tls_error(error: &RpcError, needle: &str) {
    assert!(
        matches!(error, RpcError::Tls { .. }),
        "not a TLS error: {error:?}"
    );
    let text = error.to_string().to_lowercase();
    assert!(text.contains(needle), "{error} does not say {needle:?}");
}

#[tokio::test]
async fn a_tls_call_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.server("provider"), None).await;
    let client = Client::builder()
        .tls_ca(&ca.ca)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let greeter = GreeterClient::new(client);
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mutual_tls_call_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.server("provider"), Some(&ca.ca)).await;
    let me = ca.client("orders", "orders");
    let client = Client::builder()
        .tls_ca(&ca.ca)
        .tls_client_cert(&me.cert, &me.key)
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let greeter = GreeterClient::new(client);
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_by_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.server("provider"), Some(&ca.ca)).await;
    let error = fails_at_once(Client::builder().tls_ca(&ca.ca), &server).await;
    assert_tls_error(&error, "client certificate");
    // A certificate from another CA is refused as well.
    let other = TestCa::new(dir.path(), "other");
    let stranger = other.client("stranger", "stranger");
    let error = fails_at_once(
        Client::builder()
            .tls_ca(&ca.ca)
            .tls_client_cert(&stranger.cert, &stranger.key),
        &server,
    )
    .await;
    assert_tls_error(&error, "refused the tls session");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_provider_signed_by_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let other = TestCa::new(dir.path(), "other");
    let server = tls_server(&other.server("provider"), None).await;
    let error = fails_at_once(Client::builder().tls_ca(&ca.ca), &server).await;
    assert_tls_error(&error, "unknownissuer");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_provider_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.expired_server("provider"), None).await;
    let error = fails_at_once(Client::builder().tls_ca(&ca.ca), &server).await;
    assert_tls_error(&error, "expired");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused_unless_that_name_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.server_named("provider", "greeter.internal"), None).await;
    let error = fails_at_once(Client::builder().tls_ca(&ca.ca), &server).await;
    assert_tls_error(&error, "not valid for name");
    // client.tls.server_name names what the certificate carries: accepted.
    let client = Client::builder()
        .tls_ca(&ca.ca)
        .tls_server_name("greeter.internal")
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let greeter = GreeterClient::new(client);
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plaintext_client_reaching_a_tls_provider_fails_at_once_saying_tls_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = tls_server(&ca.server("provider"), None).await;
    let error = fails_at_once(Client::builder(), &server).await;
    assert_tls_error(&error, "requires tls");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tls_client_reaching_a_plaintext_provider_fails_at_once_saying_it_is_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let server = example_server(Server::builder()).await;
    let error = fails_at_once(Client::builder().tls_ca(&ca.ca), &server).await;
    assert_tls_error(&error, "plaintext");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tls_provider_in_etcd_is_found_and_called_with_only_the_ca_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url("ttl=5");
    let files = ca.server("provider");
    let server = example_server(
        Server::builder()
            .tls(ServerTls::new(&files.cert, &files.key))
            .registry(rpc_registry::connect(&url).await.unwrap()),
    )
    .await;
    // The node tells consumers to use TLS.
    let transports = tests::consumer::greeter_transports(&url).await;
    assert_eq!(transports, vec![Some("tls".to_string())]);

    let client = Client::builder()
        .tls_ca(&ca.ca)
        .discover(rpc_registry::connect(&url).await.unwrap());
    let greeter = GreeterClient::new(client);
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    // A consumer without trust roots is told what is missing, at once.
    let bare = GreeterClient::new(Client::discover(rpc_registry::connect(&url).await.unwrap()));
    let error = within_a_second(bare.hello("eve".into())).await.unwrap_err();
    assert_tls_error(&error, "client.tls.ca");
    server.shutdown().await.unwrap();
}
