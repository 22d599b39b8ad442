#!/usr/bin/env bash
# End-to-end scenario on a real Kubernetes cluster (kind), for machines with Docker:
#
#   1. create a kind cluster                      6. produce and consume through a kcat pod
#   2. build the image and load it into kind      7. scale the Broker 3 -> 4, check the brokers and data
#   3. helm-install the chart, `helm test` it     8. scale the Broker 4 -> 3, check the brokers and data
#   4. apply manifests/examples                   9. delete a Topic, check it is gone from Kafka
#   5. wait until Broker, Topics, Processors are Ready
#
# Every step has a deadline; the first failure dumps the cluster's state and exits non-zero. The cluster
# is deleted at the end unless KEEP_CLUSTER=1.
#
# Needs: docker, kind, kubectl, helm (3.x or 4.x), on the PATH.
# Environment:
#   KIND_CLUSTER   cluster name (default odradek-e2e); an existing cluster of that name is reused
#   IMAGE          image to test (default odradek:e2e)
#   SKIP_BUILD=1   do not build IMAGE: it is already in the local Docker engine
#   KEEP_CLUSTER=1 leave the cluster running afterwards
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_CLUSTER="${KIND_CLUSTER:-odradek-e2e}"
IMAGE="${IMAGE:-odradek:e2e}"
OPERATOR_NS="odradek-system"
NS="odradek-demo"
BROKER="odradek"
KCAT_IMAGE="edenhill/kcat:1.7.1"
SMOKE_TOPIC="e2e-smoke"
MESSAGES=100

STEP="setup"
CREATED_CLUSTER=0

log() {
  echo "[$(date -u +%H:%M:%S)] $*" >&2
}

die() {
  log "FAILED in step '$STEP': $*"
  exit 1
}

step() {
  STEP="$*"
  log "== $STEP"
}

k() {
  kubectl --context "kind-$KIND_CLUSTER" "$@"
}

# poll SECONDS DESCRIPTION COMMAND...: reruns COMMAND every 5 s until it succeeds or the deadline passes.
poll() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "last attempt at: $what"
      "$@" >&2 || true
      die "timed out after ${seconds}s waiting for $what"
    fi
    sleep 5
  done
  log "ok: $what"
}

dump_state() {
  log "---- cluster state for diagnosis ----"
  k get odradek,statefulsets,pods,services,pvc -A -o wide || true
  k -n "$NS" describe brokers,topics,processors || true
  k -n "$NS" get events --sort-by=.lastTimestamp | tail -n 60 || true
  k -n "$OPERATOR_NS" logs deployment/odradek-operator --tail=300 || true
  local pod
  for pod in $(k -n "$NS" get pods -o name 2>/dev/null); do
    log "---- logs of $pod"
    k -n "$NS" logs "$pod" --all-containers --tail=100 || true
  done
}

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 ]]; then
    dump_state
  fi
  if [[ "${KEEP_CLUSTER:-0}" == 1 ]]; then
    log "keeping cluster $KIND_CLUSTER (kubectl --context kind-$KIND_CLUSTER ...)"
  elif [[ $CREATED_CLUSTER == 1 ]]; then
    log "deleting cluster $KIND_CLUSTER"
    kind delete cluster --name "$KIND_CLUSTER"
  fi
  if [[ $rc -eq 0 ]]; then
    log "PASSED: kind scenario"
  else
    log "FAILED: kind scenario (step '$STEP', exit $rc)"
  fi
  exit $rc
}
trap cleanup EXIT

# kcat ARGS...: runs kcat in the kcat pod against the cluster's bootstrap address, with a deadline.
kcat() {
  timeout 120 kubectl --context "kind-$KIND_CLUSTER" -n "$NS" exec kcat -- kcat -b "$BOOTSTRAP" "$@"
}

# kcat_stdin ARGS...: the same, feeding this script's stdin to kcat (for producing).
kcat_stdin() {
  timeout 120 kubectl --context "kind-$KIND_CLUSTER" -n "$NS" exec -i kcat -- kcat -b "$BOOTSTRAP" "$@"
}

broker_count() {
  kcat -L | sed -n 's/^ *\([0-9][0-9]*\) brokers:$/\1/p'
}

has_brokers() {
  [[ "$(broker_count)" == "$1" ]]
}

# The metadata is read whole before grep looks at it: `grep -q` in a pipeline may exit early, and the
# writer's SIGPIPE would then fail the pipeline under pipefail.
has_topic() {
  local metadata
  metadata="$(kcat -L -t "$1")" || return 1
  grep -q "topic \"$1\" with [1-9]" <<<"$metadata"
}

topic_gone() {
  local metadata
  metadata="$(kcat -L)" || return 1
  ! grep -q "topic \"$1\"" <<<"$metadata"
}

# consume_all TOPIC COUNT: prints COUNT messages from the beginning as key:value, sorted.
consume_all() {
  kcat -C -t "$1" -o beginning -c "$2" -e -q -f '%k:%s\n' | sort
}

expect_messages() {
  local got
  got="$(consume_all "$SMOKE_TOPIC" "$MESSAGES")" || die "consuming $SMOKE_TOPIC failed"
  [[ "$got" == "$EXPECTED" ]] || {
    diff <(echo "$EXPECTED") <(echo "$got") | head -n 20 >&2
    die "consumed messages differ from the produced ones"
  }
  log "ok: consumed all $MESSAGES messages of $SMOKE_TOPIC"
}

status_of() { # status_of KIND NAME JSONPATH
  k -n "$NS" get "$1" "$2" -o "jsonpath=$3"
}

is() { # is EXPECTED COMMAND...: COMMAND prints EXPECTED
  local want="$1"
  shift
  [[ "$("$@")" == "$want" ]]
}

# ------------------------------------------------------------------------------------------------

step "check tools"
for tool in docker kind kubectl helm timeout; do
  command -v "$tool" >/dev/null || die "$tool is not on the PATH"
done
docker info >/dev/null 2>&1 || die "the Docker engine does not answer"

step "create kind cluster $KIND_CLUSTER"
if grep -qx "$KIND_CLUSTER" <<<"$(kind get clusters 2>/dev/null)"; then
  log "reusing existing cluster $KIND_CLUSTER"
else
  CREATED_CLUSTER=1
  kind create cluster --name "$KIND_CLUSTER" --config "$ROOT/e2e/kind/cluster.yaml" --wait 180s
fi
k cluster-info >/dev/null

step "build and load image $IMAGE"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  DOCKER_BUILDKIT=1 docker build -t "$IMAGE" "$ROOT"
fi
docker image inspect "$IMAGE" >/dev/null || die "image $IMAGE is not in the local Docker engine"
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

step "helm install"
helm --kube-context "kind-$KIND_CLUSTER" upgrade --install odradek "$ROOT/helm/odradek" \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent \
  --set replicaCount=2 \
  --wait --timeout 5m
k -n "$OPERATOR_NS" rollout status deployment/odradek-operator --timeout=180s
for crd in brokers topics processors; do
  k wait --for=condition=Established "crd/$crd.odradek.dev" --timeout=60s
done
helm --kube-context "kind-$KIND_CLUSTER" test odradek --namespace "$OPERATOR_NS" --timeout 3m

step "apply the examples in namespace $NS"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f -
k -n "$NS" apply -f "$ROOT/manifests/examples/"
k -n "$NS" apply -f - <<EOF
apiVersion: odradek.dev/v1alpha1
kind: Topic
metadata:
  name: $SMOKE_TOPIC
spec:
  cluster: $BROKER
  partitions: 3
  replicationFactor: 3
EOF

step "wait for the Broker to be Ready"
k -n "$NS" wait --for=condition=Ready "broker/$BROKER" --timeout=10m
poll 60 "3 ready brokers in the Broker status" is 3 status_of broker "$BROKER" '{.status.readyReplicas}'
BOOTSTRAP="$(status_of broker "$BROKER" '{.status.bootstrap}')"
[[ -n "$BOOTSTRAP" ]] || die "the Broker status has no bootstrap address"
log "bootstrap address: $BOOTSTRAP"

step "wait for the Topics and Processors to be Ready"
k -n "$NS" wait --for=condition=Ready topics --all --timeout=5m
k -n "$NS" wait --for=condition=Ready processors --all --timeout=10m
k -n "$NS" get odradek -o wide

step "start a kcat pod"
k -n "$NS" run kcat --image="$KCAT_IMAGE" --restart=Never --command -- sleep 3600
k -n "$NS" wait --for=condition=Ready pod/kcat --timeout=180s
poll 120 "3 brokers in the cluster metadata" has_brokers 3
for topic in page-views user-profile-updates newsfeed search-index "$SMOKE_TOPIC"; do
  poll 60 "topic $topic in the cluster metadata" has_topic "$topic"
done

step "produce and consume through kcat"
EXPECTED="$(for i in $(seq 1 "$MESSAGES"); do echo "user-$((i % 7)):view-$i"; done | sort)"
seq 1 "$MESSAGES" | while read -r i; do echo "user-$((i % 7)):view-$i"; done \
  | kcat_stdin -P -t "$SMOKE_TOPIC" -K: -X acks=all || die "producing to $SMOKE_TOPIC failed"
expect_messages

step "scale the Broker up to 4"
k -n "$NS" scale "broker/$BROKER" --replicas=4
k -n "$NS" wait --for=jsonpath='{.status.readyReplicas}'=4 "broker/$BROKER" --timeout=10m
k -n "$NS" wait --for=jsonpath='{.status.readyReplicas}'=4 "statefulset/$BROKER" --timeout=5m
poll 180 "4 brokers in the cluster metadata" has_brokers 4
k -n "$NS" wait --for=condition=Ready "broker/$BROKER" --timeout=10m
expect_messages

step "scale the Broker down to 3"
k -n "$NS" scale "broker/$BROKER" --replicas=3
# Replicas move off broker 3 first; only then does the StatefulSet shrink.
poll 600 "the StatefulSet shrunk to 3" is 3 k -n "$NS" get "statefulset/$BROKER" -o 'jsonpath={.spec.replicas}'
k -n "$NS" wait --for=jsonpath='{.status.replicas}'=3 "broker/$BROKER" --timeout=10m
k -n "$NS" wait --for=condition=Ready "broker/$BROKER" --timeout=10m
poll 180 "3 brokers in the cluster metadata" has_brokers 3
expect_messages

step "a scale-down below a topic's replication factor is refused"
# Two refusals guard it: the API server's CEL rule (replicas >= spec.controllers, 3 here) and, where
# the scale subresource skips CEL, the operator's ScaleDownRefused condition.
if out="$(k -n "$NS" scale "broker/$BROKER" --replicas=2 2>&1)"; then
  poll 180 "a ScaleDownRefused condition" is True \
    status_of broker "$BROKER" '{.status.conditions[?(@.type=="ScaleDownRefused")].status}'
  k -n "$NS" scale "broker/$BROKER" --replicas=3
else
  [[ "$out" == *"replicas must be at least controllers"* ]] || die "scaling to 2 failed for another reason: $out"
  log "refused by the API server: $out"
fi
is 3 k -n "$NS" get "statefulset/$BROKER" -o 'jsonpath={.spec.replicas}' || die "the StatefulSet shrank below 3"

step "delete a Topic"
k -n "$NS" delete topic "$SMOKE_TOPIC" --wait=true --timeout=3m
poll 120 "topic $SMOKE_TOPIC gone from the cluster metadata" topic_gone "$SMOKE_TOPIC"
has_topic page-views || die "deleting $SMOKE_TOPIC removed page-views too"

STEP="done"
