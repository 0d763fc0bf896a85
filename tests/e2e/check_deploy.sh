#!/usr/bin/env bash
# Static checks of the deployment files (no exporter needed):
#   - generate-alerts.py --check          avepoint-alerts.yml + prometheusrule.yaml
#                                         are what the template makes
#   - generate-alerts.py --backup-max-age a custom stale limit reaches the rules
#   - promtool check rules / test rules   deploy/prometheus/avepoint-alerts*.yml
#   - tests/e2e/alert_modes.py            every alert, every deployment mode's labels (promtool)
#   - tests/e2e/alertmanager_e2e.py       the inhibitions in a real Alertmanager
#   - promtool check config               deploy/prometheus/prometheus.yml (+ its rule files)
#   - amtool check-config                 deploy/alertmanager/alertmanager.yml
#   - amtool config routes test           severity routing of the example
#   - dashboard structure lint            dashboards/avepoint-scan-profiles.json
#   - Grafana provisioning example        deploy/grafana/provisioning/dashboards/avepoint.yaml
#
# Run from the repository root:  bash tests/e2e/check_deploy.sh
# Needs: promtool (package prometheus), amtool and alertmanager (package
# prometheus-alertmanager, which installs it as prometheus-alertmanager), python3.
# PROMTOOL, AMTOOL, ALERTMANAGER and PYTHON override the commands. With AVEPOINT_EXPORTER set
# to the exporter binary, the dashboard end-to-end check (tests/e2e/dashboard_e2e.py,
# needs the prometheus binary too, ~30 s) runs as well. Exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
PROMTOOL=${PROMTOOL:-promtool}
AMTOOL=${AMTOOL:-amtool}
PYTHON=${PYTHON:-python3}
ALERTMANAGER=${ALERTMANAGER:-$(command -v prometheus-alertmanager || command -v alertmanager || echo alertmanager)}

for tool in "$PROMTOOL" "$AMTOOL" "$ALERTMANAGER" "$PYTHON"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_deploy: $tool not found (install the prometheus and prometheus-alertmanager packages, python3)" >&2
    exit 2
  fi
done

# shellcheck source=tests/e2e/steps.sh
. "$(dirname "$0")/steps.sh"

AM_CONFIG=deploy/alertmanager/alertmanager.yml

# Which receiver the example routes an alert to.
route_is() {
  local want=$1; shift
  local got
  # stdout is the receiver name; stderr may carry an --alertmanager.url warning.
  got=$("$AMTOOL" config routes test --config.file="$AM_CONFIG" "$@" 2>/dev/null) || true
  if [ "$got" != "$want" ]; then
    echo "routing $*: want receiver '$want', got '$got'"
    return 1
  fi
  echo "routing $* -> $got"
}

routes() {
  route_is pager alertname=AvepointScanFailed severity=critical customer_id=c1 &&
  route_is ticket alertname=AvepointDailyReportStale severity=warning customer_id=c1 &&
  route_is ticket alertname=SomethingElse
}

step "alert rules generated from the template" "$PYTHON" deploy/prometheus/generate-alerts.py --check
step "promtool check rules" "$PROMTOOL" check rules deploy/prometheus/avepoint-alerts.yml
# --backup-max-age: a custom limit lands in the expression (seconds) and the
# description (as given), and a bad one is refused.
backup_max_age() {
  local out rc
  out=$(mktemp -d) || return 1
  "$PYTHON" deploy/prometheus/generate-alerts.py --backup-max-age 1d12h --output-dir "$out" >/dev/null &&
    grep -q 'avepoint_backup_last_success_timestamp_seconds{job_kind="backup"}) > 129600$' "$out/avepoint-alerts.yml" &&
    grep -q 'more than 1d12h' "$out/avepoint-alerts.yml" &&
    grep -q 'avepoint_backup_last_success_timestamp_seconds{job_kind="backup"}) > 129600$' "$out/prometheusrule.yaml" &&
    ! "$PYTHON" deploy/prometheus/generate-alerts.py --backup-max-age 26 --output-dir "$out" 2>/dev/null
  rc=$?
  rm -rf "$out"
  [ $rc -eq 0 ] && echo "--backup-max-age 1d12h -> 129600 s; 26 (no unit) refused"
  return $rc
}
step "generate-alerts.py --backup-max-age" backup_max_age
step "promtool test rules" "$PROMTOOL" test rules deploy/prometheus/avepoint-alerts.test.yml
step "every alert in every mode (promtool)" "$PYTHON" tests/e2e/alert_modes.py --promtool "$PROMTOOL"
# rule_files in prometheus.yml are relative to that file, so check it in place.
step "promtool check config" "$PROMTOOL" check config deploy/prometheus/prometheus.yml
step "amtool check-config" "$AMTOOL" check-config "$AM_CONFIG"
step "amtool config routes test" routes
step "inhibitions in a real Alertmanager" "$PYTHON" tests/e2e/alertmanager_e2e.py --alertmanager "$ALERTMANAGER"
step "dashboard lint (+ self-test of its query classifier)" "$PYTHON" tests/e2e/dashboard_lint.py --self-test dashboards/avepoint-scan-profiles.json
# The provider the docs show: apiVersion 1, one file provider whose path is
# where the docs tell users to put the JSON. PyYAML when present, else skipped.
grafana_provisioning() {
  "$PYTHON" - <<'EOF'
import sys
try:
    import yaml
except ImportError:
    print("skipped: no PyYAML (python3 -m pip install pyyaml)")
    sys.exit(0)
doc = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/avepoint.yaml", encoding="utf-8"))
problems = []
if doc.get("apiVersion") != 1:
    problems.append("apiVersion must be 1")
providers = doc.get("providers") or []
if len(providers) != 1:
    problems.append("want one provider")
for p in providers:
    if p.get("type") != "file":
        problems.append("provider type must be file")
    path = (p.get("options") or {}).get("path", "")
    docs = open("docs/dashboard-and-alerts.md", encoding="utf-8").read()
    if not path.startswith("/") or path not in docs:
        problems.append("options.path %r must be absolute and the one docs/dashboard-and-alerts.md names" % path)
    if not p.get("folder"):
        problems.append("provider has no folder")
for pr in problems:
    print("FAIL " + pr)
print("grafana provisioning: %s" % ("OK" if not problems else "FAILED"))
sys.exit(1 if problems else 0)
EOF
}
step "Grafana provisioning example" grafana_provisioning
if [ -n "${AVEPOINT_EXPORTER:-}" ]; then
  step "dashboard e2e" "$PYTHON" tests/e2e/dashboard_e2e.py --exporter "$AVEPOINT_EXPORTER"
fi

finish check_deploy
echo "check_deploy: all checks passed"
