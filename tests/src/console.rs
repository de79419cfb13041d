//! `rpcctl console` for tests: the process on a free loopback port ([`Console`]), and the
//! browser tests' fixture ([`ConsolePages`]): real etcd, three example providers with admin
//! endpoints, the console, and headless Chromium.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::etcd::EtcdServer;
use crate::process::{binary, Provider};
use crate::wait::wait_until;
use crate::webdriver::Browser;

/// How long the console may take to start, and a page to show what the registry holds.
pub const SHOWN: Duration = Duration::from_secs(15);

/// A running `rpcctl console`, killed on drop.
pub struct Console {
    _child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The line it printed at start.
    pub started: String,
}

impl Console {
    /// Starts `rpcctl` (the binary at `rpcctl`) as `console --listen 127.0.0.1:0` on
    /// `registry`, with `RPC_CONSOLE_TOKEN` set to `token` if given.
    pub async fn start(rpcctl: &Path, registry: &str, token: Option<&str>) -> Console {
        let mut command = Command::new(rpcctl);
        command
            .args(["--registry", registry, "console", "--listen", "127.0.0.1:0"])
            .env_remove("RPC_REGISTRY")
            .env_remove("RPC_CONSOLE_TOKEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("RPC_CONSOLE_TOKEN", token);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start rpcctl console: {e}"));
        let stdout = child.stdout.take().expect("stdout was piped");
        let started = tokio::time::timeout(SHOWN, BufReader::new(stdout).lines().next_line())
            .await
            .expect("the console printed its address in time")
            .expect("the console's stdout is readable")
            .expect("the console printed a line");
        let addr = started
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http://"))
            .and_then(|word| word.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {started:?}"));
        Console {
            _child: child,
            addr,
            started,
        }
    }
}

/// etcd, three providers with admin endpoints, the console, and a browser.
pub struct ConsolePages {
    /// The browser.
    pub browser: Browser,
    /// The registry URL everything uses.
    pub url: String,
    /// The providers.
    pub providers: Vec<Provider>,
    /// The console.
    pub console: Console,
    /// etcd.
    pub etcd: EtcdServer,
}

impl ConsolePages {
    /// Everything started with providers on lease TTL `ttl`, or `None` (after printing why)
    /// when chromium or chromedriver is not installed.
    pub async fn start(ttl: Duration) -> Option<ConsolePages> {
        let browser = match Browser::start().await {
            Ok(browser) => browser,
            Err(why) => {
                eprintln!("{why}");
                return None;
            }
        };
        let etcd = EtcdServer::start().await;
        let url = etcd.registry_url(&format!("ttl={}", ttl.as_secs()));
        let mut providers = Vec::new();
        for _ in 0..3 {
            let admin = ["--admin", "127.0.0.1:0"];
            providers.push(Provider::spawn_on("127.0.0.1:0", &url, &admin).await);
        }
        let console = Console::start(&binary("rpcctl"), &url, None).await;
        Some(ConsolePages {
            browser,
            url,
            providers,
            console,
            etcd,
        })
    }

    /// The providers' `host:port`.
    pub fn addresses(&self) -> Vec<String> {
        self.providers.iter().map(Provider::address).collect()
    }

    /// Opens the console at `fragment` (`#/live`).
    pub async fn open(&self, fragment: &str) {
        let url = format!("http://{}/{fragment}", self.console.addr);
        self.browser.goto(&url).await;
    }

    /// Runs `script` in the page until it returns `want`; panics naming `what` after
    /// [`SHOWN`].
    pub async fn wait_page(&self, what: &str, script: &str, args: Value, want: Value) {
        let browser = &self.browser;
        wait_until(SHOWN, what, || {
            let (args, want) = (args.clone(), want.clone());
            async move { browser.run(script, args).await == want }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Saves the window as `target/console-screenshots/<name>`.
    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
        self.browser.screenshot(&dir.join(name)).await;
    }

    /// Ends the browser session.
    pub async fn finish(self) {
        self.browser.close().await;
    }
}
