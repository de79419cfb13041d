//! `rpc-bench registry`'s figures as a readable table.

use crate::registry_bench::{BackendFigures, RequestRate};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The figures as a readable table.
pub fn table(all: &[BackendFigures]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for f in all {
        let _ = writeln!(out, "== {} ==", f.backend);
        let _ = writeln!(
            out,
            "register -> visible in a watching Directory:   p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (n={})",
            f.register_to_visible.p50_ms, f.register_to_visible.p99_ms, f.register_to_visible.max_ms, f.register_to_visible.n
        );
        let _ = writeln!(
            out,
            "deregister -> gone from a watching Directory:  p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (n={})",
            f.deregister_to_gone.p50_ms, f.deregister_to_gone.p99_ms, f.deregister_to_gone.max_ms, f.deregister_to_gone.n
        );
        let kills: Vec<String> = f
            .kill_to_gone_ms
            .iter()
            .map(|k| format!("{k:.0} ms"))
            .collect();
        let _ = writeln!(
            out,
            "SIGKILL -> gone (TTL {} s):                     {}",
            f.ttl_s,
            kills.join(", ")
        );
        let _ = writeln!(
            out,
            "register {} instances over {} services (64 in flight): {:.0} ms ({:.0}/s)",
            f.scale_instances,
            f.scale_services,
            f.register_all_ms,
            f.scale_instances as f64 / (f.register_all_ms / 1_000.0).max(1e-9)
        );
        let _ = writeln!(
            out,
            "new consumer discovers {} services / {} instances: {:.0} ms; RSS {:.1} MiB -> {:.1} MiB (+{:.1} MiB)",
            f.discovery.services,
            f.discovery.instances,
            f.discovery.discover_ms,
            mib(f.discovery.rss_before),
            mib(f.discovery.rss_after),
            mib(f.discovery.rss_after.saturating_sub(f.discovery.rss_before)),
        );
        let _ = writeln!(
            out,
            "registry requests per heartbeat ({:.0} ms): 1 instance {:.1}, {} instances {:.1}  [{}]",
            f.heartbeat_ms,
            f.requests_per_heartbeat_one.total,
            f.scale_instances,
            f.requests_per_heartbeat_all.total,
            kinds(&f.requests_per_heartbeat_all),
        );
        match &f.governance_to_applied {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "governance write -> in force in a consumer:    p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (n={})",
                    s.p50_ms, s.p99_ms, s.max_ms, s.n
                );
            }
            None => {
                let _ = writeln!(out, "governance documents: not kept by this backend");
            }
        }
        out.push('\n');
    }
    out
}

fn kinds(rate: &RequestRate) -> String {
    rate.by_kind
        .iter()
        .map(|(kind, n)| format!("{kind} {n:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}
