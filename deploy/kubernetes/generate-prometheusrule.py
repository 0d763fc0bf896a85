#!/usr/bin/env python3
"""Write prometheusrule.yaml: deploy/prometheus/avepoint-alerts.yml as a
prometheus-operator PrometheusRule.

    python3 deploy/kubernetes/generate-prometheusrule.py          # (re)write it
    python3 deploy/kubernetes/generate-prometheusrule.py --check  # exit 1 if stale

The rules file is the single source: its `groups:` section is copied
verbatim (comments and formatting included) under `spec:`, and the result is
parsed back to make sure spec.groups equals the rules file's groups exactly.
tests/e2e/check_kubernetes.sh runs --check, so an alert changed in the rules
file without regenerating fails CI. Needs PyYAML.
"""

import argparse
import difflib
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE.parent / "prometheus" / "avepoint-alerts.yml"
OUTPUT = HERE / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/avepoint-alerts.yml, itself generated from
# deploy/prometheus/avepoint-alerts.template.yml. Do not edit: change the
# template (and its promtool unit tests), then run
# python3 deploy/prometheus/generate-alerts.py (--job-selector for other job
# names; deploy/kubernetes/generate-prometheusrule.py --check verifies this file).
#
# Your Prometheus must select it: kube-prometheus-stack only picks up rules
# labelled `release: <helm release>` unless
# prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: avepoint-exporter
  labels:
    app.kubernetes.io/name: avepoint-exporter
spec:
"""


def render(rules_text: str) -> str:
    lines = rules_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("groups:")]
    if len(starts) != 1:
        raise SystemExit(f"{RULES}: expected exactly one top-level `groups:` line")
    body = lines[starts[0]:]
    for line in body[1:]:
        if line and not line[0].isspace() and not line.startswith("#"):
            raise SystemExit(f"{RULES}: unexpected top-level key after groups: {line!r}")
    indented = "\n".join(("  " + line) if line.strip() else "" for line in body)
    return HEADER + indented.rstrip("\n") + "\n"


def verify(rendered: str, rules_text: str) -> None:
    want = yaml.safe_load(rules_text)
    got = yaml.safe_load(rendered)
    if set(want) != {"groups"}:
        raise SystemExit(f"{RULES}: top-level keys {sorted(want)}, expected only groups")
    if got["spec"]["groups"] != want["groups"]:
        raise SystemExit("generated spec.groups differs from the rules file's groups")
    if set(got["spec"]) != {"groups"}:
        raise SystemExit(f"generated spec has keys {sorted(got['spec'])}, expected only groups")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if prometheusrule.yaml is not up to date")
    args = parser.parse_args()

    rules_text = RULES.read_text(encoding="utf-8")
    rendered = render(rules_text)
    verify(rendered, rules_text)

    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != rendered:
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), rendered.splitlines(keepends=True),
                str(OUTPUT), "regenerated"))
            print(f"{OUTPUT} is stale: run python3 deploy/kubernetes/generate-prometheusrule.py",
                  file=sys.stderr)
            return 1
        print(f"{OUTPUT.name} is up to date with {RULES.name}")
        return 0

    OUTPUT.write_text(rendered, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
