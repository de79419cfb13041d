#!/usr/bin/env bash
# Installs what the tests and the demo need and is missing: etcd, ZooKeeper (with Java),
# Redis (redis-server and redis-cli), and protoc with the well-known protos (etcd-client's
# build needs both). With --nacos it also installs rnacos, a Nacos 2.x-compatible server, with
# `cargo install rnacos --locked` (about 9 CPU-minutes, 1.7 GB peak; only the Nacos tests and
# `demo.sh --registry nacos` need it), unless an rnacos binary is already there. With
# --browser it also installs Debian's chromium and chromium-driver, for the console's browser
# tests only (scripts/test.sh passes it; demo.sh does not, so the demo never waits for them).
set -euo pipefail

nacos=0
browser=0
for arg in "$@"; do
  case "$arg" in
    --nacos) nacos=1 ;;
    --browser) browser=1 ;;
    *) echo "install-deps: unknown argument $arg (only --nacos, --browser)" >&2; exit 2 ;;
  esac
done

if [ "$nacos" = 1 ] && ! command -v rnacos >/dev/null 2>&1 \
    && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/rnacos" ]; then
  echo "install-deps: installing rnacos with cargo (takes several minutes)" >&2
  # Its own target dir, so the build does not churn the workspace's.
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/rnacos-build" cargo install rnacos --locked
fi

need=()
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || need+=(libprotobuf-dev)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
browser_packages=()
if [ "$browser" = 1 ]; then
  [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || browser_packages+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || browser_packages+=(chromium-driver)
  need+=("${browser_packages[@]}")
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-deps: installing ${need[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
    etcd-server etcd-client zookeeper protobuf-compiler libprotobuf-dev redis-server \
    "${browser_packages[@]}"
  # Debian starts a system Redis on port 6379; the tests and the demo run their own.
else
  echo "install-deps: this is not a Debian/Ubuntu machine. Install these yourself:" >&2
  echo "  etcd (server and etcdctl) 3.4+, ZooKeeper 3.6+ with Java 11+, Redis 6.2+ (redis-server," >&2
  echo "  redis-cli), protoc with the well-known protos; with --browser, chromium and chromedriver" >&2
  echo "  missing here: ${need[*]}" >&2
  exit 1
fi
