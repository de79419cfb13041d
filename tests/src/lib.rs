//! The integration-test harness: real registry servers on free loopback ports in temp dirs,
//! deadline-bounded waits, and the backend conformance suite that every registry backend
//! runs.
//!
//! - [`etcd`]: [`etcd::EtcdServer`] and [`etcd::EtcdCluster`], and the etcd conformance backend;
//! - [`etcd_secure`]: an etcd with users and client-certificate TLS; [`registry_tls`]: its
//!   certificates, generated at test time;
//! - [`memory`]: the in-process conformance backend;
//! - [`conformance`]: the cases every backend must pass, and [`conformance_tests!`];
//! - [`wait`]: waiting on conditions and watch streams with a deadline, never a fixed sleep;
//! - [`net`]: free loopback ports; [`logging`]: captured `tracing` output;
//! - [`process`] and [`servers`]: example provider/consumer processes and in-process servers;
//! - [`admin`]: requests to an admin HTTP endpoint; [`certs`]: test certificates (rcgen);
//! - [`webdriver`]: headless Chromium driven through chromedriver, and [`console`]: an
//!   `rpcctl console` process and the browser tests' fixture;
//! - [`captured`]: binaries at trace level with their output captured, and the check that no
//!   secret is in it;
//! - [`raw`]: hand-written frames on raw sockets, and a well-behaved client calling alongside;
//! - [`zookeeper`]: a real ZooKeeper server and its conformance backend;
//! - [`redis`]: a real Redis server and its conformance backend;
//! - `nacos` (feature `nacos`): a real rnacos server and its conformance backend.

pub mod admin;
pub mod captured;
pub mod certs;
pub mod conformance;
mod conformance_documents;
pub mod console;
pub mod consumer;
pub mod etcd;
pub mod etcd_secure;
pub mod logging;
pub mod memory;
#[cfg(feature = "nacos")]
pub mod nacos;
pub mod net;
pub mod panics;
pub mod process;
pub mod raw;
pub mod redis;
pub mod registry_tls;
pub mod servers;
pub mod wait;
pub mod webdriver;
pub mod zookeeper;
