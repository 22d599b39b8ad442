#!/usr/bin/env bash
# Runs e2e/kind/run.sh against fake docker, kind, helm and kubectl (e2e/kind/fake/), offline: catches
# shell mistakes in the scenario (quoting, pipefail traps, wrong jsonpaths) before it meets a real
# cluster, and checks that a failing step fails the run, dumps the state and deletes the cluster.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
failed=0

run() { # run NAME [VAR=value...]: runs the scenario in a fresh fake cluster; prints its exit code
  local state
  state="$(mktemp -d)"
  local rc=0
  env "${@:2}" FAKE_STATE="$state" PATH="$HERE/fake:$PATH" bash "$HERE/run.sh" >"$state/out.log" 2>&1 || rc=$?
  echo "$rc $state"
}

expect() { # expect DESCRIPTION CONDITION...
  if "${@:2}"; then
    echo "ok: $1"
  else
    echo "FAIL: $1" >&2
    failed=1
  fi
}

read -r rc state < <(run pass)
expect "the scenario passes against a cluster that behaves" test "$rc" -eq 0
expect "every step ran" grep -q "PASSED: kind scenario" "$state/out.log"
expect "the Broker was scaled to 4, to 3 and (refused) to 2" \
  grep -q -- "--replicas=2" "$state/calls.log"
expect "the smoke topic was deleted" grep -q "delete topic e2e-smoke" "$state/calls.log"
expect "the cluster was deleted" grep -q "^kind delete cluster" "$state/calls.log"
[[ $rc -eq 0 ]] || tail -n 30 "$state/out.log" >&2
rm -rf "$state"

read -r rc state < <(run fail FAKE_FAIL="wait --for=condition=Ready processors")
expect "a failing wait fails the scenario" test "$rc" -ne 0
expect "the failure names its step" grep -q "FAILED: kind scenario (step 'wait for the Topics and Processors to be Ready'" "$state/out.log"
expect "the cluster state was dumped" grep -q "logs deployment/odradek-operator" "$state/calls.log"
expect "the cluster was deleted after the failure" grep -q "^kind delete cluster" "$state/calls.log"
rm -rf "$state"

exit "$failed"
