#!/usr/bin/env bash
# The whole check, as CI runs it: dependencies, formatting, lints, docs, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "install dependencies"
# --browser: chromium and chromium-driver for the console's browser tests (tests/tests/console.rs).
scripts/install-deps.sh --browser

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "memory-only-app builds no etcd, ZooKeeper, Redis or Nacos client"
# rpc-registry with default-features = false must leave out etcd-client, tonic, prost,
# zookeeper-client, redis and nacos-sdk (and the tonic-*/prost-* companions).
tree=$(cargo tree -p memory-only-app -e normal --prefix none)
leaked=$(grep -E '^(etcd-client|tonic(-[a-z-]+)?|prost(-[a-z-]+)?|zookeeper-client|redis|nacos-sdk) v' <<<"$tree" | sed 's/ (\*)$//' | sort -u || true)
if [[ -n "$leaked" ]]; then
    printf 'memory-only-app depends on a registry client it should not build:\n%s\n' "$leaked" >&2
    exit 1
fi

step "build binaries (tests start real provider and consumer processes)"
cargo build --workspace --bins

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "cargo test"
# memory-only-app runs on its own: in a workspace-wide run Cargo unifies rpc-registry's
# features with the crates that enable etcd and ZooKeeper, which is what it checks are off.
cargo test --workspace --exclude memory-only-app --no-fail-fast
cargo test -p memory-only-app

step "opentelemetry feature (lints, and the two-hop chain as one OpenTelemetry trace)"
cargo clippy -p example-provider --features opentelemetry --all-targets -- -D warnings
cargo test -p example-provider --features opentelemetry --test otel_trace

step "Nacos tests (real rnacos)"
# rnacos takes about 9 CPU-minutes to install, so it is installed only on request
# (scripts/install-deps.sh --nacos); where it is installed, its tests run here, last, because
# they build the examples with the `nacos` feature.
if command -v rnacos >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/rnacos" ]; then
    cargo build -p example-provider --features nacos
    cargo test -p tests --features nacos --test registry_nacos
    cargo test -p rpcctl --features nacos --test rpcctl nacos
else
    echo "skipped: rnacos is not installed; scripts/install-deps.sh --nacos installs it"
fi
