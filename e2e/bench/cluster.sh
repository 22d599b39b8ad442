#!/usr/bin/env bash
# Replicated throughput and latency: three `odradek broker` processes on this machine (one metadata
# quorum), 4-partition topics with replication factor 3, measured with librdkafka's own
# rdkafka_performance. Every byte is written three times to the same disk, and three brokers and the
# client share the machine's cores: read the figures against `e2e/bench/broker.sh`'s single broker.
#
#   e2e/bench/cluster.sh           # about 2 minutes after the builds
#   COUNT=200000 e2e/bench/cluster.sh
#
# Needs what e2e/bench/broker.sh needs (it builds rdkafka_performance the same way: run it once first).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${BENCH_DIR:-$root/target/bench}
perf_bin="$work/rdkafka_performance"
[ -x "$perf_bin" ] || { echo "run e2e/bench/broker.sh once first: it builds $perf_bin" >&2; exit 1; }

COUNT=${COUNT:-500000}               # 1 KiB records per produce run
LAT_SECONDS=${LAT_SECONDS:-20}       # latency run at 1,000 records/s

echo "== machine"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "== build"
cargo build --release --bin odradek --quiet

base=$((20000 + RANDOM % 20000))
voters="0@127.0.0.1:$((base + 3)),1@127.0.0.1:$((base + 13)),2@127.0.0.1:$((base + 23))"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for id in 0 1 2; do
  data="$work/cluster-$id"; rm -rf "$data"; mkdir -p "$data"
  "$root/target/release/odradek" broker --node-id $id --controller-voters "$voters" \
    --cluster-listen 127.0.0.1:$((base + id * 10 + 3)) \
    --listen 127.0.0.1:$((base + id * 10)) --http 127.0.0.1:$((base + id * 10 + 1)) --data-dir "$data" \
    --auto-create-topics true --default-partitions 4 --default-replication-factor 3 \
    --group-initial-rebalance-delay-ms 0 > "$work/cluster-$id.log" 2>&1 &
  pids+=($!)
done
for id in 0 1 2; do
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base + id * 10 + 1))/readyz")" = 200 ] && break
    sleep 0.1
  done
done
b="127.0.0.1:$base,127.0.0.1:$((base + 10)),127.0.0.1:$((base + 20))"
perf() { "$perf_bin" -b "$b" "$@" 2>&1; }
pcts() { sort -n "$1" | awk '{a[NR]=$1} END{if(NR==0){print "no samples"; exit} printf "records %d  p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000}'; }
table() { grep '^|' | sed -n '1p;$p'; }
produce() { # topic count acks
  perf -P -t "$1" -s 1024 -c "$2" -a "$3" -u -q -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 | table
}

echo "== produce 1 KiB records, replication factor 3"
echo "acks=1:";   produce r3-a1 "$COUNT" 1
echo "acks=all:"; produce r3-all "$COUNT" -1
echo "== consume (from the leaders)"
perf -C -G "bench-$RANDOM" -t r3-all -c "$COUNT" -o beginning -u -X fetch.wait.max.ms=100 | table
echo "== produce-to-ack latency, acks=all, 1,000 records/s for ${LAT_SECONDS}s"
perf -P -t r3-lat -s 100 -c $((LAT_SECONDS * 1000)) -r 1000 -a -1 -l -A "$work/r3-ack.lat" -u -X linger.ms=0 | table
echo "produce-to-ack: $(pcts "$work/r3-ack.lat")"
echo "== under-replicated partitions at the end (each broker's /metrics)"
for id in 0 1 2; do
  curl -s "http://127.0.0.1:$((base + id * 10 + 1))/metrics" | awk -v id=$id '/^odradek_broker_under_replicated_partitions /{print "broker " id ": " $2}'
done
