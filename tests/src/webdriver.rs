//! Headless Chromium driven through chromedriver over the W3C WebDriver protocol, for the
//! console's browser tests. Debian's `chromium` and `chromium-driver` packages
//! (`scripts/install-deps.sh --browser`); when either binary is missing [`Browser::start`] says so and
//! returns `None`, and the test skips with that message.
//!
//! The protocol is plain JSON over HTTP/1.1 to chromedriver on a free loopback port; each
//! request is one connection, bounded in time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::net::free_port;
use crate::wait::wait_for;

/// How long one WebDriver request may take (starting a session launches Chromium).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

/// One Chromium session behind its own chromedriver. [`Browser::close`] ends both; a test
/// that panics first ends them on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    closed: bool,
}

/// `name` from `$ENV_VAR`, `/usr/bin`, or the `PATH`.
fn find(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env_var) {
        return Some(PathBuf::from(path)).filter(|p| p.exists());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin"))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.exists())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `Err` with a message naming what
    /// is missing when a binary is not installed.
    pub async fn start() -> Result<Browser, String> {
        let chromium = find("CHROMIUM", "chromium").ok_or(
            "chromium is not installed (scripts/install-deps.sh --browser installs it): \
             browser test skipped",
        )?;
        let chromedriver = find("CHROMEDRIVER", "chromedriver").ok_or(
            "chromedriver is not installed (package chromium-driver, scripts/install-deps.sh \
             --browser): browser test skipped",
        )?;
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for(
            Duration::from_secs(20),
            "chromedriver to answer",
            || async move {
                let (_, status) = request(addr, "GET", "/status", None).await.ok()?;
                status["value"]["ready"].as_bool().filter(|&ready| ready)
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1500,1100"],
            },
        }}});
        let (code, answer) = request(addr, "POST", "/session", Some(&capabilities))
            .await
            .unwrap_or_else(|e| panic!("new session: {e}"));
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("new session: {code} {answer}"))
            .to_string();
        Ok(Browser {
            driver,
            addr,
            session,
            closed: false,
        })
    }

    /// One command of this session; panics on a WebDriver error, naming it.
    async fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// One command of this session; a WebDriver error as text.
    async fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let (code, answer) = request(self.addr, method, &path, body)
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if code != 200 {
            return Err(format!("{method} {path}: {code} {answer}"));
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })))
            .await;
    }

    /// The first element `css` selects, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        let path = format!("/session/{}/elements", self.session);
        let body = json!({"using": "css selector", "value": css});
        let (_, answer) = request(self.addr, "POST", &path, Some(&body)).await.ok()?;
        let id = answer["value"].get(0)?.get(ELEMENT)?.as_str()?;
        Some(Element(id.to_string()))
    }

    /// Waits up to `timeout` for an element `css` selects.
    pub async fn wait_find(&self, css: &str, timeout: Duration) -> Element {
        wait_for(timeout, &format!("an element {css:?}"), || self.find(css))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .0
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) {
        let path = format!("/element/{}/click", element.0);
        self.command("POST", &path, Some(&json!({}))).await;
    }

    /// Clicks what `css` selects, finding it again if the page replaced it in between (a
    /// page that refreshes its rows makes the old element stale).
    pub async fn click_css(&self, css: &str, timeout: Duration) {
        let what = format!("a click on {css:?}");
        wait_for(timeout, &what, || async {
            let element = self.find(css).await?;
            let path = format!("/element/{}/click", element.0);
            self.try_command("POST", &path, Some(&json!({}))).await.ok()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Empties an input, then types `text` into it.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let clear = format!("/element/{}/clear", element.0);
        self.command("POST", &clear, Some(&json!({}))).await;
        let value = format!("/element/{}/value", element.0);
        self.command("POST", &value, Some(&json!({ "text": text })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command("POST", "/execute/sync", Some(&body)).await
    }

    /// Saves a PNG of the window to `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.command("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn close(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = request(self.addr, "DELETE", &path, None).await;
        let _ = self.driver.kill().await;
        self.closed = true;
    }
}

impl Drop for Browser {
    /// After a panic: ends the session so Chromium exits (killing chromedriver alone would
    /// leave it running), from a thread of its own since no runtime may be left to use.
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (addr, path) = (self.addr, format!("/session/{}", self.session));
        let _ = std::thread::spawn(move || end_session(addr, &path)).join();
        let _ = self.driver.start_kill();
    }
}

/// `DELETE path`, waiting (bounded) for the answer, which comes once Chromium has quit.
fn end_session(addr: SocketAddr, path: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let head = format!("DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_ok() {
        let _ = stream.read(&mut [0u8; 1024]);
    }
}

/// One WebDriver request: the status code and the JSON answer.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open: read the head, then Content-Length bytes.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let (head_len, body_len) = loop {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection closed before an answer".to_string());
            }
            answer.extend_from_slice(&chunk[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or("an answer without Content-Length")?;
                break (end + 4, length);
            }
        };
        while answer.len() < head_len + body_len {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection closed in the middle of an answer".to_string());
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&answer[..head_len]);
        let json = String::from_utf8_lossy(&answer[head_len..head_len + body_len]);
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("no status code")?;
        let value = serde_json::from_str(&json).map_err(|e| format!("not JSON ({e}): {json}"))?;
        Ok((code, value))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer in {REQUEST_TIMEOUT:?}"))?
}
