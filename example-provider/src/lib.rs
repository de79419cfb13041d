//! The example services every guide, test and tool uses: `example.Greeter` and
//! `example.Calculator`, with one implementation of each; `example.Relay`, which forwards to
//! a Greeter (the middle of a call chain); and two server [`middleware`]s.

pub mod flags;
pub mod middleware;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Greets, and tells which provider answered.
#[rpc_core::service(name = "example.Greeter", version = "1.0.0")]
pub trait Greeter {
    /// Returns `"Hello, {name}!"`.
    #[idempotent]
    async fn hello(&self, name: String) -> String;
    /// Returns the `host:port` this provider serves on.
    #[idempotent]
    async fn whoami(&self) -> String;
}

/// Arithmetic, echo and sleep, for tests of values, errors, payloads and deadlines.
#[rpc_core::service(name = "example.Calculator", version = "1.0.0")]
pub trait Calculator {
    /// Returns `a + b` (wrapping on overflow).
    #[idempotent]
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Returns `a / b`, or `Err("division by zero")`.
    #[idempotent]
    async fn divide(&self, a: i64, b: i64) -> Result<i64, String>;
    /// Returns `data` unchanged.
    #[idempotent]
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Returns after `ms` milliseconds.
    async fn sleep(&self, ms: u64);
}

/// Forwards greetings to a downstream `example.Greeter`: the middle hop of a call chain
/// (consumer -> relay -> greeter), whose trace id and `rpc-tag` follow the chain.
#[rpc_core::service(name = "example.Relay", version = "1.0.0")]
pub trait Relay {
    /// Calls `hello(name)` on a Greeter provider and returns its answer, or the error's text.
    async fn relay(&self, name: String) -> Result<String, String>;
    /// Calls `whoami` on a Greeter provider: which downstream provider the chain reached.
    async fn downstream(&self) -> Result<String, String>;
}

/// The relay: a Greeter stub over the client it was given.
#[derive(Debug, Clone)]
pub struct ExampleRelay {
    greeter: GreeterClient,
}

impl ExampleRelay {
    /// A relay that calls Greeters through `client` (usually a registry client).
    pub fn new(client: rpc_core::Client) -> ExampleRelay {
        ExampleRelay {
            greeter: GreeterClient::new(client),
        }
    }
}

impl Relay for ExampleRelay {
    async fn relay(&self, name: String) -> Result<String, String> {
        self.greeter.hello(name).await.map_err(|e| e.to_string())
    }

    async fn downstream(&self) -> Result<String, String> {
        self.greeter.whoami().await.map_err(|e| e.to_string())
    }
}

/// The example provider's implementation of both services.
#[derive(Debug, Clone, Default)]
pub struct ExampleProvider {
    /// Set once the server is bound; shared by clones so both services see it.
    address: Arc<OnceLock<String>>,
}

impl ExampleProvider {
    /// A provider that reports `address` (`host:port`) from `whoami`.
    pub fn new(address: impl Into<String>) -> ExampleProvider {
        let provider = ExampleProvider::default();
        provider.set_address(address);
        provider
    }

    /// Sets the address `whoami` reports, when it is known only after binding (port 0).
    /// Only the first call has an effect.
    pub fn set_address(&self, address: impl Into<String>) {
        let _ = self.address.set(address.into());
    }
}

impl Greeter for ExampleProvider {
    async fn hello(&self, name: String) -> String {
        format!("Hello, {name}!")
    }

    async fn whoami(&self) -> String {
        self.address.get().cloned().unwrap_or_default()
    }
}

impl Calculator for ExampleProvider {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, String> {
        if b == 0 {
            return Err("division by zero".to_string());
        }
        a.checked_div(b).ok_or_else(|| "overflow".to_string())
    }

    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
