//! Free loopback ports for servers the tests start.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// A loopback port that was free a moment ago: bound to `127.0.0.1:0`, then released.
/// Never hands out the same port twice in one process, so servers started by parallel tests
/// do not collide with each other; a collision with another process shows as a server that
/// fails to start, which the harness retries on new ports.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|e| panic!("cannot bind a loopback port: {e}"));
        let mut handed_out = handed_out.lock().unwrap_or_else(|p| p.into_inner());
        if handed_out.insert(port) {
            return port;
        }
    }
}
