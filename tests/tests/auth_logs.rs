//! What caller-authentication failures log, in a test binary of its own: it reads the log
//! lines of a subscriber set for its thread, and a test elsewhere in the same binary hitting
//! the same `warn!` first (with no subscriber on its thread) could leave that call site
//! cached as disabled. Auth failures are not retried, not counted for ejection, logged once
//! per caller per minute, and tokens never reach the logs.

use example_provider::GreeterClient;
use rpc_core::client::AuthToken;
use rpc_core::server::ServerAuth;
use rpc_core::{Client, Server, Status};
use tests::consumer::greeter_key;
use tests::logging::CapturedLogs;
use tests::servers::{example_server, write_tokens};

const ORDERS_TOKEN: &str = "orders-Xk29fQpz";

#[tokio::test]
async fn auth_failures_are_not_retried_not_ejected_logged_once_and_never_show_the_token() {
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    write_tokens(&tokens, &format!("orders {ORDERS_TOKEN}\n"));
    let registry = rpc_registry::connect("memory://auth-not-retried")
        .await
        .unwrap();
    let a = example_server(
        Server::builder()
            .auth(ServerAuth::tokens_file(&tokens))
            .registry(registry.clone()),
    )
    .await;
    let b = example_server(
        Server::builder()
            .auth(ServerAuth::tokens_file(&tokens))
            .registry(registry.clone()),
    )
    .await;
    let wrong = "orders-WRONG-5521";
    let client = Client::builder()
        .auth_token(AuthToken::new(wrong))
        .discover(registry);
    let greeter = GreeterClient::new(client.clone());
    for _ in 0..6 {
        let error = greeter.hello("eve".into()).await.unwrap_err();
        assert_eq!(error.status(), Some(Status::Unauthenticated), "{error}");
    }
    let entry = client
        .directory()
        .and_then(|d| d.cached(&greeter_key()))
        .expect("the greeter entry is cached");
    let members = entry.members();
    let calls: u64 = members.endpoints().iter().map(|e| e.calls()).sum();
    assert_eq!(calls, 6, "each refused call made one attempt, no retry");
    for endpoint in members.endpoints() {
        assert!(!endpoint.is_ejected(), "{endpoint:?} was ejected");
        assert_eq!(endpoint.failures(), 0, "{endpoint:?} counted auth failures");
    }
    let text = logs.text();
    let refusals = text.matches("call refused: unauthenticated").count();
    // One caller (this host) on two providers: at most one line per provider per minute.
    assert!(
        (1..=2).contains(&refusals),
        "{refusals} refusal lines:\n{text}"
    );
    for secret in [wrong, ORDERS_TOKEN] {
        assert!(!text.contains(secret), "a token reached the logs:\n{text}");
    }
    assert!(!format!("{client:?} {:?}", AuthToken::new(wrong)).contains(wrong));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
