#!/usr/bin/env bash
# Processor benchmarks: pageview-count events/s (per core) and changelog restore MB/s through a real
# broker, plus the local store comparison (redb vs fjall) behind the choice of redb.
#
# Usage: e2e/bench/processor.sh [BOOTSTRAP]
#   BOOTSTRAP  a running cluster; without it the script starts `odradek broker` (release build) on
#              loopback ports in a temporary directory and stops it afterwards.
# Environment: EVENTS (default 1000000), RESTORE_MB (default 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== machine: $(nproc) cores, $(uname -r)"
cargo build --quiet --release -p odradek-cli -p odradek-processor --examples --bins

broker_pid=""
tmp=""
cleanup() {
  if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  if [[ -n "$tmp" ]]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

if [[ $# -ge 1 ]]; then
  bootstrap="$1"
else
  tmp="$(mktemp -d)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  bootstrap="127.0.0.1:$port"
  target/release/odradek broker --data-dir "$tmp/data" --listen "$bootstrap" --http "127.0.0.1:$http" \
    --group-initial-rebalance-delay-ms 0 >"$tmp/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "== broker $bootstrap (pid $broker_pid, data in $tmp)"
fi

echo "== local store: redb vs fjall (commit batches with fsync, point reads, restore bulk load)"
target/release/examples/store_bench
echo "== pageview-count throughput and changelog restore"
target/release/examples/throughput --bootstrap "$bootstrap" --events "${EVENTS:-1000000}" \
  --restore-mb "${RESTORE_MB:-200}"
