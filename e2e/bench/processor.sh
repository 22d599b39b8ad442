#!/usr/bin/env bash
# Processor benchmarks: pageview-count events/s (per core) and changelog restore MB/s, plus the
# local store comparison (redb vs fjall) behind the choice of redb.
#
# Usage: e2e/bench/processor.sh [BOOTSTRAP]
#   BOOTSTRAP  a running cluster (e.g. 127.0.0.1:9092 for `odradek broker`); without it the benchmark
#              hosts librdkafka's mock cluster in-process, whose CPU then counts against the processor.
# Environment: EVENTS (default 1000000), RESTORE_MB (default 200).
set -euo pipefail
cd "$(dirname "$0")/../.."
args=(--events "${EVENTS:-1000000}" --restore-mb "${RESTORE_MB:-200}")
if [[ $# -ge 1 ]]; then
  args+=(--bootstrap "$1")
fi
echo "== machine: $(nproc) cores, $(uname -r)"
echo "== local store: redb vs fjall (commit batches with fsync, point reads, restore bulk load)"
cargo run --quiet --release -p odradek-processor --example store_bench
echo "== pageview-count throughput and changelog restore"
cargo run --quiet --release -p odradek-processor --example throughput -- "${args[@]}"
