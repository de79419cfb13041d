//! `rpcctl register`, the registrar, against a real etcd: a plain TCP listener registered
//! this way is listed; killing the listener removes the node within interval × misses + 1 s;
//! restarting it brings the node back; SIGTERM deregisters at once; the registrar's own
//! SIGKILL leaves the node to expire with the lease's TTL.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rpc_core::{Registry, ServiceKey};
use tests::etcd::EtcdServer;
use tests::wait::wait_until;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const KEY: &str = "legacy.Billing:1.0.0";
const INTERVAL: Duration = Duration::from_millis(500);
const MISSES: u32 = 2;
const TTL: Duration = Duration::from_secs(2);

/// A plain TCP server that accepts and drops connections, until aborted.
async fn listener(addr: &str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    })
}

fn registrar(url: &str, address: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rpcctl"))
        .args([
            "--registry",
            url,
            "register",
            KEY,
            address,
            "--meta",
            "lang=cobol",
        ])
        .args(["--interval", "0.5", "--misses", &MISSES.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start rpcctl register: {e}"))
}

async fn listed(registry: &dyn Registry, address: &str) -> bool {
    let key: ServiceKey = KEY.parse().expect("a good key");
    registry.discover(&key).await.is_ok_and(|list| {
        list.iter().any(|i| {
            i.address() == address && i.metadata.get("lang").map(String::as_str) == Some("cobol")
        })
    })
}

async fn wait_listed(registry: &dyn Registry, address: &str, want: bool, within: Duration) {
    let what = format!("{address} to be {}listed", if want { "" } else { "un" });
    wait_until(within, &what, || async {
        listed(registry, address).await == want
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("the registrar is running") as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(pid, signal);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_tcp_listener_comes_and_goes_with_its_check() {
    let etcd = EtcdServer::start().await;
    let url = etcd.registry_url(&format!("ttl={}", TTL.as_secs()));
    let registry = rpc_registry::connect(&url).await.unwrap();
    let registry = &*registry;
    let port = tests::net::free_port();
    let address = format!("127.0.0.1:{port}");

    let server = listener(&address).await;
    let mut registrar_process = registrar(&url, &address);
    wait_listed(registry, &address, true, Duration::from_secs(10)).await;

    server.abort();
    let _ = server.await;
    let bound = INTERVAL * MISSES + Duration::from_secs(1);
    let killed = Instant::now();
    wait_listed(registry, &address, false, bound * 3).await;
    assert!(
        killed.elapsed() <= bound,
        "the node went {:?} after the listener died; the bound is {bound:?}",
        killed.elapsed()
    );

    let server = listener(&address).await;
    wait_listed(registry, &address, true, Duration::from_secs(10)).await;

    signal(&registrar_process, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(10), registrar_process.wait())
        .await
        .expect("the registrar exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !listed(registry, &address).await,
        "SIGTERM must deregister before the registrar exits"
    );

    let mut registrar_process = registrar(&url, &address);
    wait_listed(registry, &address, true, Duration::from_secs(10)).await;
    signal(&registrar_process, libc::SIGKILL);
    let _ = registrar_process.wait().await;
    assert!(
        listed(registry, &address).await,
        "a killed registrar cannot deregister: the node stays until its lease expires"
    );
    wait_listed(registry, &address, false, TTL + Duration::from_secs(5)).await;
    server.abort();
    registry.shutdown().await.unwrap();
}
