//! Caller authentication by bearer token: the right token is served; a wrong or missing one
//! gets status 9; a caller not on the service's allow-list gets status 10; an edit of the
//! tokens file takes effect while the provider runs. Pings stay unauthenticated. (What auth
//! failures log is in `auth_logs.rs`.)

use std::path::Path;
use std::time::Duration;

use example_provider::{CalculatorClient, GreeterClient};
use rpc_core::client::AuthToken;
use rpc_core::server::ServerAuth;
use rpc_core::{Client, RpcError, Server, ServerHandle, Status};
use tests::servers::{example_server, write_tokens};
use tests::wait::wait_until;

const ORDERS_TOKEN: &str = "orders-Xk29fQpz";
const BILLING_TOKEN: &str = "billing-7Hq2mVw0";

/// A provider whose Calculator only `billing` may call; Greeter is open to every caller.
async fn server(tokens: &Path) -> ServerHandle {
    let auth = ServerAuth::tokens_file(tokens).allow("example.Calculator", ["billing"]);
    example_server(Server::builder().auth(auth)).await
}

async fn greeter(server: &ServerHandle, token: Option<&str>) -> GreeterClient {
    let mut builder = Client::builder();
    if let Some(token) = token {
        builder = builder.auth_token(AuthToken::new(token));
    }
    let client = builder
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    GreeterClient::new(client)
}

fn status(result: Result<String, RpcError>) -> Option<Status> {
    result.expect_err("the call must be refused").status()
}

#[tokio::test]
async fn the_right_token_is_served_and_a_wrong_or_missing_one_gets_status_9() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(&tokens, &format!("# caller token\norders {ORDERS_TOKEN}\n"));
    let server = server(&tokens).await;

    let right = greeter(&server, Some(ORDERS_TOKEN)).await;
    assert_eq!(right.hello("ann".into()).await.unwrap(), "Hello, ann!");
    let wrong = greeter(&server, Some("orders-Xk29fQpy")).await;
    let error = wrong.hello("eve".into()).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::Unauthenticated), "{error}");
    assert!(!error.to_string().contains("Xk29fQp"), "{error}");
    let missing = greeter(&server, None).await;
    assert_eq!(
        status(missing.hello("eve".into()).await),
        Some(Status::Unauthenticated)
    );
    // Pings are below calls: answered without a token.
    let client = Client::builder()
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    client.ping(server.local_addr()).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_caller_not_on_the_allow_list_gets_status_10() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(
        &tokens,
        &format!("orders {ORDERS_TOKEN}\nbilling {BILLING_TOKEN}\n"),
    );
    let server = server(&tokens).await;
    let addr = server.local_addr().to_string();
    let as_caller = |token: &str| {
        let builder = Client::builder().auth_token(AuthToken::new(token));
        let addr = addr.clone();
        async move { CalculatorClient::new(builder.connect(&addr).await.unwrap()) }
    };
    let orders = as_caller(ORDERS_TOKEN).await;
    let error = orders.add(1, 2).await.unwrap_err();
    assert_eq!(error.status(), Some(Status::PermissionDenied), "{error}");
    assert!(error.to_string().contains("\"orders\""), "{error}");
    let billing = as_caller(BILLING_TOKEN).await;
    assert_eq!(billing.add(1, 2).await.unwrap(), 3);
    // Not listed for Greeter: every authenticated caller may call it.
    let orders = greeter(&server, Some(ORDERS_TOKEN)).await;
    assert_eq!(orders.hello("ann".into()).await.unwrap(), "Hello, ann!");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_edit_of_the_tokens_file_takes_effect_while_the_provider_runs() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(&tokens, &format!("orders {ORDERS_TOKEN}\n"));
    let server = server(&tokens).await;
    let old = greeter(&server, Some(ORDERS_TOKEN)).await;
    let new = greeter(&server, Some("orders-rotated-41")).await;
    assert!(old.hello("a".into()).await.is_ok());
    assert_eq!(
        status(new.hello("a".into()).await),
        Some(Status::Unauthenticated)
    );

    write_tokens(&tokens, "orders orders-rotated-41\n");
    wait_until(
        Duration::from_secs(10),
        "the rotated token to be accepted",
        || async { new.hello("a".into()).await.is_ok() },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status(old.hello("a".into()).await),
        Some(Status::Unauthenticated)
    );

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn under_mutual_tls_the_client_certificate_names_the_caller() {
    use rpc_core::server::ServerTls;
    let dir = tempfile::tempdir().unwrap();
    let ca = tests::certs::TestCa::new(dir.path(), "ca");
    let tokens = dir.path().join("tokens");
    write_tokens(&tokens, &format!("orders {ORDERS_TOKEN}\n"));
    let files = ca.server("provider");
    let auth = ServerAuth::tokens_file(&tokens).allow("example.Calculator", ["billing"]);
    let server = example_server(
        Server::builder()
            .tls(ServerTls::new(&files.cert, &files.key).client_ca(&ca.ca))
            .auth(auth),
    )
    .await;
    let addr = server.local_addr().to_string();
    let with_cert = |caller: &str| {
        let me = ca.client(caller, caller);
        let builder = Client::builder()
            .tls_ca(&ca.ca)
            .tls_client_cert(me.cert, me.key);
        let addr = addr.clone();
        async move { builder.connect(&addr).await.unwrap() }
    };
    // No token: the certificate's common name is the caller, allow-list included.
    let billing = CalculatorClient::new(with_cert("billing").await);
    assert_eq!(billing.add(2, 3).await.unwrap(), 5);
    let orders = with_cert("orders").await;
    let error = CalculatorClient::new(orders.clone())
        .add(2, 3)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(Status::PermissionDenied), "{error}");
    assert!(error.to_string().contains("\"orders\""), "{error}");
    let greeter = GreeterClient::new(orders);
    assert_eq!(greeter.hello("ann".into()).await.unwrap(), "Hello, ann!");
    server.shutdown().await.unwrap();
}
