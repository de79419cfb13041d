#!/usr/bin/env bash
# The newcomer's first command: builds, starts a provider, calls it, stops the provider.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --quiet -p example-provider -p example-consumer
bin=target/release

work=$(mktemp -d)
provider_pid=""
cleanup() {
  [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null && wait "$provider_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$bin/example-provider" --listen 127.0.0.1:0 --registry none > "$work/provider.out" &
provider_pid=$!
for _ in $(seq 100); do
  addr=$(sed -n 's/^example-provider listening on //p' "$work/provider.out")
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "${addr:-}" ] || { echo "demo: the provider did not start" >&2; exit 1; }
echo "provider listening on $addr"

"$bin/example-consumer" --connect "$addr" --registry none --calls 1000 --concurrency 8
