//! What `#[service]` generates, tested without a network: the server adapter is driven through
//! `Service::call` directly, and the client stub is only type-checked.

use std::sync::atomic::{AtomicUsize, Ordering};

use rpc_core::__private::Bytes;
use rpc_core::{Codec, DispatchError, Service};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

const CODECS: [Codec; 2] = [Codec::Bincode, Codec::Json];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub owner: String,
    pub balance: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Deposit,
    Withdraw,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankError {
    Overdrawn { missing: i64 },
}

/// A bank with every supported method shape.
#[rpc_core::service(name = "test.Bank", version = "2.1.0")]
pub trait Bank {
    /// No arguments, no return value.
    async fn ping(&self);
    /// No arguments, a plain value.
    #[idempotent]
    async fn count(&self) -> usize;
    /// One struct argument, a plain value.
    async fn describe(&self, account: Account) -> String;
    /// Three arguments (struct, enum, integer), a `Result`.
    async fn apply(&self, account: Account, op: Op, amount: i64) -> Result<Account, BankError>;
}

#[derive(Default)]
struct MemoryBank {
    pings: AtomicUsize,
}

impl Bank for MemoryBank {
    async fn ping(&self) {
        self.pings.fetch_add(1, Ordering::SeqCst);
    }

    async fn count(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    async fn describe(&self, account: Account) -> String {
        format!("{} has {}", account.owner, account.balance)
    }

    async fn apply(&self, account: Account, op: Op, amount: i64) -> Result<Account, BankError> {
        let balance = match op {
            Op::Deposit => account.balance + amount,
            Op::Withdraw if amount > account.balance => {
                return Err(BankError::Overdrawn {
                    missing: amount - account.balance,
                })
            }
            Op::Withdraw => account.balance - amount,
        };
        Ok(Account { balance, ..account })
    }
}

/// Defaults: name is the trait's name, version `1.0.0`.
#[rpc_core::service]
trait Plain {
    async fn echo(&self, text: String) -> String;
}

struct Echo;

impl Plain for Echo {
    async fn echo(&self, text: String) -> String {
        text
    }
}

/// Encodes `args`, dispatches `method`, runs the handler and decodes its output.
async fn call<S, A, R>(service: &S, codec: Codec, method: &str, args: &A) -> R
where
    S: Service,
    A: Serialize,
    R: DeserializeOwned,
{
    let body = codec.encode(args).expect("arguments encode");
    let future = service
        .call(method, codec, body)
        .expect("method dispatches");
    let out = future.await.expect("output encodes");
    codec.decode(&out).expect("output decodes")
}

fn alice(balance: i64) -> Account {
    Account {
        owner: "alice".to_string(),
        balance,
    }
}

#[test]
fn descriptor_has_name_version_key_and_methods() {
    let d = BankClient::DESCRIPTOR;
    assert_eq!(d.name, "test.Bank");
    assert_eq!(d.version, "2.1.0");
    assert_eq!(d.key, "test.Bank:2.1.0");
    let methods: Vec<(&str, bool)> = d.methods.iter().map(|m| (m.name, m.idempotent)).collect();
    assert_eq!(
        methods,
        [
            ("ping", false),
            ("count", true),
            ("describe", false),
            ("apply", false)
        ]
    );
    let server = BankServer::new(MemoryBank::default());
    // Same contents; the address may differ, as each use of a const may be its own copy.
    assert_eq!(server.descriptor().key, d.key);
    assert_eq!(server.descriptor().methods.len(), d.methods.len());
}

#[test]
fn descriptor_defaults_to_trait_name_and_version_1_0_0() {
    let d = PlainClient::DESCRIPTOR;
    assert_eq!(d.name, "Plain");
    assert_eq!(d.version, "1.0.0");
    assert_eq!(d.key, "Plain:1.0.0");
    assert_eq!(d.methods.len(), 1);
    assert_eq!(d.methods[0].name, "echo");
    assert!(!d.methods[0].idempotent);
}

#[tokio::test]
async fn zero_argument_methods_return_unit_and_values() {
    for codec in CODECS {
        let server = BankServer::new(MemoryBank::default());
        let () = call(&server, codec, "ping", &()).await;
        let () = call(&server, codec, "ping", &()).await;
        let count: usize = call(&server, codec, "count", &()).await;
        assert_eq!(count, 2, "{codec:?}");
    }
}

#[tokio::test]
async fn one_argument_struct() {
    for codec in CODECS {
        let server = BankServer::new(MemoryBank::default());
        let text: String = call(&server, codec, "describe", &(alice(5),)).await;
        assert_eq!(text, "alice has 5", "{codec:?}");
    }
}

#[tokio::test]
async fn three_arguments_and_result_return() {
    for codec in CODECS {
        let server = BankServer::new(MemoryBank::default());
        let ok: Result<Account, BankError> =
            call(&server, codec, "apply", &(alice(5), Op::Deposit, 10)).await;
        assert_eq!(ok, Ok(alice(15)), "{codec:?}");
        let err: Result<Account, BankError> =
            call(&server, codec, "apply", &(alice(5), Op::Withdraw, 8)).await;
        assert_eq!(err, Err(BankError::Overdrawn { missing: 3 }), "{codec:?}");
    }
}

#[tokio::test]
async fn default_named_service_dispatches() {
    for codec in CODECS {
        let server = PlainServer::new(Echo);
        let text: String = call(&server, codec, "echo", &("hi".to_string(),)).await;
        assert_eq!(text, "hi");
    }
}

#[tokio::test]
async fn from_arc_and_clone_share_the_implementation() {
    let bank = std::sync::Arc::new(MemoryBank::default());
    let server = BankServer::from_arc(bank.clone());
    let clone = server.clone();
    let () = call(&clone, Codec::Json, "ping", &()).await;
    let () = call(&server, Codec::Json, "ping", &()).await;
    assert_eq!(bank.pings.load(Ordering::SeqCst), 2);
    assert_eq!(format!("{server:?}"), "BankServer { .. }");
}

#[test]
fn unknown_method_is_rejected() {
    let server = BankServer::new(MemoryBank::default());
    let error = server
        .call("withdraw_all", Codec::Json, Bytes::new())
        .err()
        .expect("unknown method fails");
    match error {
        DispatchError::UnknownMethod { service, method } => {
            assert_eq!(service, "test.Bank:2.1.0");
            assert_eq!(method, "withdraw_all");
        }
        other => panic!("expected UnknownMethod, got {other:?}"),
    }
}

#[test]
fn undecodable_arguments_are_a_bad_request() {
    let server = BankServer::new(MemoryBank::default());
    for codec in CODECS {
        // A string where the (Account, Op, i64) tuple should be.
        let body = codec.encode(&"not a tuple").expect("encodes");
        let error = server
            .call("apply", codec, body)
            .err()
            .expect("bad body fails");
        match error {
            DispatchError::BadRequest {
                service,
                method,
                source,
            } => {
                assert_eq!(service, "test.Bank:2.1.0");
                assert_eq!(method, "apply");
                assert_eq!(source.op, "decode");
                assert_eq!(source.codec, codec.name());
            }
            other => panic!("expected BadRequest, got {other:?}"),
        }
    }
}

#[test]
fn wrong_arity_is_a_bad_request() {
    let server = BankServer::new(MemoryBank::default());
    let body = Codec::Json
        .encode(&(alice(1), Op::Deposit))
        .expect("encodes");
    let error = server.call("apply", Codec::Json, body).err();
    assert!(
        matches!(
            error,
            Some(DispatchError::BadRequest {
                method: "apply",
                ..
            })
        ),
        "{error:?}"
    );
}

/// Only type-checked, never run: the stub has one async method per trait method, taking the
/// same arguments and returning `Result<R, RpcError>`, plus the helper constructors.
#[allow(dead_code)]
async fn client_stub_has_the_expected_methods(
    client: rpc_core::Client,
    registry: std::sync::Arc<dyn rpc_core::Registry>,
) -> Result<(), rpc_core::RpcError> {
    let bank = BankClient::new(client.clone());
    let (): () = bank.ping().await?;
    let _: usize = bank.count().await?;
    let _: String = bank.describe(alice(1)).await?;
    let _: Result<Account, BankError> = bank.apply(alice(1), Op::Withdraw, 2).await?;

    let bank = bank.with_options(rpc_core::CallOptions::default());
    let _: &rpc_core::Client = bank.client();
    let _: &rpc_core::CallOptions = bank.options();
    let _: BankClient = BankClient::connect("127.0.0.1:1").await?;
    let _: BankClient = BankClient::discover(registry);
    let _: String = PlainClient::new(client).echo("x".to_string()).await?;
    Ok(())
}

/// The stub's futures are `Send`, so calls can be spawned on a multi-threaded runtime.
#[allow(dead_code)]
fn client_futures_are_send(bank: BankClient) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(async move { bank.apply(alice(1), Op::Deposit, 1).await });
}
