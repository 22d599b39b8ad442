#!/usr/bin/env bash
# Broker throughput and latency with librdkafka's own rdkafka_performance, broker and client on this
# machine, data on disk, 4-partition topics. Prints the disk's sequential write bandwidth (measured in
# the same run) beside the figures, and the broker's peak RSS.
#
#   e2e/bench/broker.sh            # full run (about 3 minutes after the builds)
#   COUNT_SMALL=2000000 e2e/bench/broker.sh
#
# Needs: a C toolchain (gcc, make), kcat, and the rdkafka-sys crate source in the cargo registry
# (it is there after any `cargo build` of this workspace).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work=${BENCH_DIR:-$root/target/bench}
mkdir -p "$work"

COUNT_SMALL=${COUNT_SMALL:-5000000}   # 100-byte records
COUNT_LARGE=${COUNT_LARGE:-1000000}   # 1 KiB records
LAT_SECONDS=${LAT_SECONDS:-20}        # latency runs at 1,000 records/s

echo "== machine"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "memory: $(free -g | awk '/Mem:/{print $2}') GiB; kernel $(uname -r)"

echo "== build"
cargo build --release --bin odradek --quiet
perf_bin="$work/rdkafka_performance"
if [ ! -x "$perf_bin" ]; then
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-*/librdkafka 2>/dev/null | sort | tail -1)
  [ -n "$src" ] || { echo "rdkafka-sys source not found: run cargo build first" >&2; exit 1; }
  rm -rf "$work/librdkafka" && cp -r "$src" "$work/librdkafka"
  (cd "$work/librdkafka" && ./configure --disable-ssl --disable-sasl --disable-curl --disable-gssapi >/dev/null \
     && make -j"$(nproc)" libs >/dev/null && make -C examples rdkafka_performance >/dev/null)
  cp "$work/librdkafka/examples/rdkafka_performance" "$perf_bin"
fi

data="$work/data"
rm -rf "$data" && mkdir -p "$data"
echo "== disk sequential write (dd, 1 GiB, fdatasync) on $(df -P "$data" | awk 'NR==2{print $1}')"
disk=$(dd if=/dev/zero of="$data/dd.tmp" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)
rm -f "$data/dd.tmp"
echo "disk: $disk"

port=$((20000 + RANDOM % 20000)); http=$((port + 1))
"$root/target/release/odradek" broker --listen 127.0.0.1:$port --http 127.0.0.1:$http --data-dir "$data" \
  --auto-create-topics true --default-partitions 4 --group-initial-rebalance-delay-ms 0 > "$work/broker.log" 2>&1 &
broker=$!
peak_rss=0
sample_rss() { local r; r=$(awk '/VmRSS/{print $2}' /proc/$broker/status 2>/dev/null || echo 0); [ "$r" -gt "$peak_rss" ] && peak_rss=$r; true; }
( while kill -0 $broker 2>/dev/null; do awk '/VmRSS/{print $2}' /proc/$broker/status 2>/dev/null; sleep 0.5; done ) > "$work/rss.log" &
sampler=$!
trap 'kill $broker $sampler 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
b=127.0.0.1:$port
perf() { "$perf_bin" -b "$b" "$@" 2>&1; }
# Percentiles of a file of per-record latencies in microseconds (rdkafka_performance -A), in ms.
pcts() { sort -n "$1" | awk '{a[NR]=$1} END{if(NR==0){print "no samples"; exit} printf "records %d  p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", NR, a[int(NR*0.5)+1]/1000, a[int(NR*0.99)+1]/1000, a[NR]/1000}'; }
# rdkafka_performance -u prints a table: keep its header row and its last (cumulative) row.
table() { grep '^|' | sed -n '1p;$p'; }

produce() { # topic size count acks
  perf -P -t "$1" -s "$2" -c "$3" -a "$4" -u -q -X linger.ms=5 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 \
    | table
}
consume() { # topic count
  perf -C -G "bench-$1-$RANDOM" -t "$1" -c "$2" -o beginning -u -X fetch.wait.max.ms=100 | table
}

echo "== produce (acks=1 and acks=all), then consume what was produced"
for spec in "p100-a1 100 $COUNT_SMALL 1" "p1k-a1 1024 $COUNT_LARGE 1" "p100-all 100 $COUNT_SMALL -1" "p1k-all 1024 $COUNT_LARGE -1"; do
  set -- $spec
  echo "produce $1 (size $2, $3 records, acks=$4):"; produce "$1" "$2" "$3" "$4"
done
for spec in "p100-a1 $COUNT_SMALL" "p1k-a1 $COUNT_LARGE"; do
  set -- $spec
  echo "consume $1 ($2 records):"; consume "$1" "$2"
done

# The high-level consumer above costs librdkafka about a microsecond of CPU per record on this
# machine, so with 100-byte records it measures the client. The batch API (-B, one partition at a time) shows
# what the broker serves: partitions are read one after another and the figures summed.
echo "== consume with the batch API (rd_kafka_consume_batch), partitions in turn"
for spec in "p100-a1 $COUNT_SMALL" "p1k-a1 $COUNT_LARGE"; do
  set -- $spec
  total_ms=0; total_msgs=0; total_bytes=0
  for p in 0 1 2 3; do
    # rd_kafka_consume_batch waits up to a second for a batch to fill: read a whole number of
    # batches (the partition's size rounded down to 10,000) so that no partial batch waits.
    hw=$(kcat -b "$b" -Q -t "$1:$p:-1" | awk '{print $NF}')
    row=$(perf -C -t "$1" -p "$p" -o beginning -c $(( hw / 10000 * 10000 )) -B 10000 -u | grep '^|' | tail -1)
    set -- "$1" "$2" $(echo "$row" | awk -F'|' '{gsub(/ /,""); print $2, $3, $4}')
    total_ms=$((total_ms + $3)); total_msgs=$((total_msgs + $4)); total_bytes=$((total_bytes + $5))
  done
  echo "consume-batch $1: $total_msgs records, $((total_msgs * 1000 / (total_ms > 0 ? total_ms : 1))) records/s, $((total_bytes / 1000 / (total_ms > 0 ? total_ms : 1))) MB/s"
done

echo "== latency at 1,000 records/s for ${LAT_SECONDS}s (produce-to-ack, producer side)"
perf -P -t lat -s 100 -c $((LAT_SECONDS * 1000)) -r 1000 -a -1 -l -A "$work/ack.lat" -u -X linger.ms=0 | table
echo "produce-to-ack: $(pcts "$work/ack.lat")"
echo "== end-to-end latency at 1,000 records/s (consumer side, fetch.wait.max.ms=100)"
# Measure only once the consumer owns its partitions: wait for its SyncGroup (bounded).
syncs() { curl -s "http://127.0.0.1:$http/metrics" | awk -F' ' '/requests_total\{api="SyncGroup"\}/{print $2}'; }
# Create the topic first (one warm-up record), so that the consumer is assigned its partitions at once.
perf -P -t e2e -s 100 -c 1 -q > /dev/null
before=$(syncs); before=${before:-0}
perf -C -G lat-e2e -t e2e -c $((LAT_SECONDS * 1000)) -l -A "$work/e2e.lat" -u -X fetch.wait.max.ms=100 -o end > "$work/e2e.log" 2>&1 &
consumer=$!
# (then one more second for its first fetch to park)
for _ in $(seq 300); do now=$(syncs); [ "${now:-0}" != "$before" ] && break; sleep 0.1; done
sleep 1
perf -P -t e2e -s 100 -c $((LAT_SECONDS * 1000)) -r 1000 -a 1 -l -q -X linger.ms=0 > /dev/null
wait $consumer || true
table < "$work/e2e.log"
echo "end-to-end: $(pcts "$work/e2e.lat")"

peak=$(sort -n "$work/rss.log" | tail -1)
echo "== broker peak RSS: $((peak / 1024)) MiB"
du -sh "$data"
