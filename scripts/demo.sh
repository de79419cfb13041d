#!/usr/bin/env bash
# The newcomer's first command. It starts a real registry (etcd, or ZooKeeper with
# `--registry zookeeper`, Redis with `--registry redis`, or rnacos, a Nacos server, with
# `--registry nacos`), three providers and a consumer; halfway through it stops one
# provider gracefully (SIGTERM) and kills another (SIGKILL). The consumer keeps calling,
# shows who answered and what the registry says, and ends with a summary. Exits non-zero if
# any call failed. Everything it starts is stopped, and its temp dir removed, on exit or Ctrl-C.
#
#   scripts/demo.sh [--registry etcd|zookeeper|redis|nacos] [--duration SECS] [--no-build] [--bin-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

registry=etcd
duration=20
build=1
bin_dir=target/release
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) registry="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$registry" in
  etcd|zookeeper|redis|nacos) ;;
  *) echo "demo: --registry must be etcd, zookeeper, redis or nacos, not $registry" >&2; exit 2 ;;
esac

say() { printf '\033[1m[demo]\033[0m %s\n' "$*"; }

features=()
deps=()
if [ "$registry" = nacos ]; then
  # The Nacos client is off by default; so is installing rnacos.
  features=(--features example-provider/nacos,example-consumer/nacos)
  deps=(--nacos)
fi
if [ "$build" = 1 ]; then
  scripts/install-deps.sh "${deps[@]}"
  say "building (release)"
  cargo build --release --quiet -p example-provider -p example-consumer "${features[@]}"
fi

work=$(mktemp -d -t rpc-demo.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# A free loopback port: nothing answers on it.
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "demo: no free port found" >&2; exit 1
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "demo: $what did not happen in time" >&2; exit 1; fi
    sleep 0.1
  done
}

start_etcd() {
  local client peer
  client=$(free_port); peer=$(free_port)
  etcd --name demo --data-dir "$work/etcd" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "demo=http://127.0.0.1:$peer" > "$work/etcd.log" 2>&1 &
  pids+=($!)
  wait_for 20 "etcd start" env ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client" endpoint health
  url="etcd://127.0.0.1:$client?ttl=3"
}

zk_ready() { # zk_ready PORT: srvr answers with a Mode: line
  exec 3<>"/dev/tcp/127.0.0.1/$1" && printf srvr >&3 && grep -q '^Mode:' <&3
}

start_zookeeper() {
  local port
  port=$(free_port)
  mkdir -p "$work/zk"
  cat > "$work/zoo.cfg" <<CFG
tickTime=500
dataDir=$work/zk
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  java -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$work/zoo.cfg" > "$work/zk.log" 2>&1 &
  pids+=($!)
  wait_for 30 "ZooKeeper start" zk_ready "$port"
  url="zookeeper://127.0.0.1:$port?ttl=3"
}

start_redis() {
  local port
  port=$(free_port)
  # No persistence: the demo's registry lives and dies with it.
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --daemonize no > "$work/redis.log" 2>&1 &
  pids+=($!)
  wait_for 20 "Redis start" redis-cli -h 127.0.0.1 -p "$port" ping
  url="redis://127.0.0.1:$port?ttl=3"
}

start_nacos() {
  local http grpc console bin
  http=$(free_port); grpc=$(free_port); console=$(free_port)
  bin=$(command -v rnacos || echo "${CARGO_HOME:-$HOME/.cargo}/bin/rnacos")
  mkdir -p "$work/nacos"
  # rnacos reads a .env from its working directory: run it in the temp dir, which has none.
  (cd "$work/nacos" && RNACOS_HTTP_PORT=$http RNACOS_GRPC_PORT=$grpc \
    RNACOS_HTTP_CONSOLE_PORT=$console RNACOS_SDK_HOST=127.0.0.1 RNACOS_CONSOLE_HOST=127.0.0.1 \
    RNACOS_DATA_DIR="$work/nacos/data" exec "$bin" > "$work/nacos.log" 2>&1) &
  pids+=($!)
  wait_for 20 "rnacos start" curl -sf "http://127.0.0.1:$http/nacos/v1/console/health/readiness"
  url="nacos://127.0.0.1:$http?grpc_port=$grpc&ttl=3"
}

say "starting $registry on a free loopback port (temp dir $work)"
"start_$registry"
say "registry: $url"

provider_pids=()
provider_addrs=()
for i in 1 2 3; do
  "$bin_dir/example-provider" --listen 127.0.0.1:0 --registry "$url" \
    > "$work/provider$i.out" 2> "$work/provider$i.log" &
  pid=$!
  pids+=("$pid"); provider_pids+=("$pid")
  wait_for 20 "provider $i start" grep -q 'listening on' "$work/provider$i.out"
  addr=$(sed -n 's/^example-provider listening on //p' "$work/provider$i.out")
  provider_addrs+=("$addr")
  say "provider $i serves on $addr and registered itself"
done

say "consumer: $duration s with 16 calls in flight, balanced round-robin, fail-over on"
"$bin_dir/example-consumer" --registry "$url" --duration "$duration" --concurrency 16 \
  --progress --show-membership --quiet &
consumer=$!
pids+=("$consumer")

half=$((duration * 4 / 10))
sleep "$half"
say "stopping provider 1 (${provider_addrs[0]}) gracefully: SIGTERM"
kill -TERM "${provider_pids[0]}"
sleep 3
say "killing provider 2 (${provider_addrs[1]}) without warning: SIGKILL"
kill -KILL "${provider_pids[1]}"
{ wait "${provider_pids[1]}"; } 2>/dev/null || true

status=0
wait "$consumer" || status=$?
if [ "$status" = 0 ]; then
  say "done: no call failed"
else
  say "done: some calls failed (exit $status)"
fi
exit "$status"
