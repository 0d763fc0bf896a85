#!/usr/bin/env python3
"""Generate the alert rules from avepoint-alerts.template.yml, with one job selector.

    python3 deploy/prometheus/generate-alerts.py            # rewrite the shipped files
    python3 deploy/prometheus/generate-alerts.py --check    # exit 1 if they are stale (CI)
    python3 deploy/prometheus/generate-alerts.py \\
        --job-selector 'job=~"my-avepoint|my-avepoint-probe"' --output-dir out/
                                                            # your own job names
    python3 deploy/prometheus/generate-alerts.py --backup-max-age 50h --output-dir out/
                                                            # backups older than 50 h are stale

Writes two files:
  avepoint-alerts.yml     a Prometheus rule file (rule_files:)
  prometheusrule.yaml     the same groups as a prometheus-operator PrometheusRule
                          (deploy/kubernetes/generate-prometheusrule.py's format)
by default into deploy/prometheus/ and deploy/kubernetes/, with --output-dir
both into that directory.

The job selector is the one place the rules name jobs: it replaces
__JOB_SELECTOR__ in the template's expressions (the `up` of
AvepointExporterDown and AvepointProbeFailing). It is a comma-separated list
of label matchers, e.g. `job=~".*avepoint.*"` (the default: it matches the
shipped job names avepoint, avepoint-probe, avepoint-exporter and
scrapeConfig/<ns>/avepoint-exporter-probe). Probe targets are told apart
from /metrics targets by their customer_id label, so one selector covers
both jobs.

The backup age limit is the one place the rules set how old a module's last
successful backup may be: AvepointBackupStale fires past it. --backup-max-age
takes a Prometheus duration (`26h`, the default; `2d`, `1d12h`, `90m`); it
replaces __BACKUP_MAX_AGE_SECONDS__ in the expression (as seconds) and
__BACKUP_MAX_AGE__ in the description (as given).

The result goes through `promtool check rules` when promtool is installed.
Needs PyYAML.
"""

import argparse
import difflib
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "avepoint-alerts.template.yml"
RULES = HERE / "avepoint-alerts.yml"
PROMETHEUSRULE = HERE.parent / "kubernetes" / "prometheusrule.yaml"
PLACEHOLDER = "__JOB_SELECTOR__"
DEFAULT_JOB_SELECTOR = 'job=~".*avepoint.*"'
AGE_PLACEHOLDER = "__BACKUP_MAX_AGE__"
AGE_SECONDS_PLACEHOLDER = "__BACKUP_MAX_AGE_SECONDS__"
DEFAULT_BACKUP_MAX_AGE = "26h"
# A Prometheus duration without ms: units largest first, each at most once.
DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1)
MARKER = "# ---- everything above this line stays in the template ----\n"

# One matcher: name, operator, double-quoted value (escapes allowed).
MATCHER = r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
SELECTOR = re.compile(r"^%s(?:,%s)*$" % (MATCHER, MATCHER))


def load_prometheusrule_module():
    """deploy/kubernetes/generate-prometheusrule.py (its name has a hyphen)."""
    path = HERE.parent / "kubernetes" / "generate-prometheusrule.py"
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def duration_seconds(text: str) -> int:
    """Seconds of a Prometheus duration such as 26h or 1d12h; SystemExit if it is none or 0."""
    m = DURATION.match(text.strip())
    seconds = sum(int(v) * unit for v, unit in zip(m.groups(), DURATION_UNITS) if v) if m and text.strip() else 0
    if seconds <= 0:
        raise SystemExit(f"--backup-max-age {text!r}: want a positive Prometheus duration such as "
                         f"{DEFAULT_BACKUP_MAX_AGE}, 2d or 1d12h")
    return seconds


def render_rules(template: str, selector: str, backup_max_age: str = DEFAULT_BACKUP_MAX_AGE) -> str:
    seconds = duration_seconds(backup_max_age)
    if not SELECTOR.match(selector):
        raise SystemExit(f"--job-selector {selector!r}: want label matchers such as "
                         f"{DEFAULT_JOB_SELECTOR} (comma-separated, values in double quotes, no braces)")
    if template.count(MARKER) != 1:
        raise SystemExit(f"{TEMPLATE}: expected the marker line once: {MARKER.strip()}")
    body = template.split(MARKER, 1)[1]
    for placeholder in (PLACEHOLDER, AGE_PLACEHOLDER, AGE_SECONDS_PLACEHOLDER):
        if placeholder not in body:
            raise SystemExit(f"{TEMPLATE}: no {placeholder} below the marker")
    lines = []
    for line in body.splitlines(keepends=True):
        # Only expressions and annotations: comments may mention the
        # placeholders by name.
        if not line.lstrip().startswith("#"):
            line = line.replace(PLACEHOLDER, selector.strip())
            line = line.replace(AGE_SECONDS_PLACEHOLDER, str(seconds))
            line = line.replace(AGE_PLACEHOLDER, backup_max_age.strip())
        lines.append(line)
    header = (
        "# GENERATED by deploy/prometheus/generate-alerts.py from\n"
        "# deploy/prometheus/avepoint-alerts.template.yml with\n"
        f"#   --job-selector '{selector.strip()}' --backup-max-age {backup_max_age.strip()}\n"
        "# Do not edit: change the template (and its promtool unit tests), then run\n"
        "# the script.\n"
        "#\n"
    )
    return header + "".join(lines)


def promtool_check(rules_text: str) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        print("promtool not found: generated rules not checked", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "avepoint-alerts.yml"
        path.write_text(rules_text, encoding="utf-8")
        out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"promtool check rules failed on the generated rules:\n{out.stdout}{out.stderr}")


def compare(path: Path, want: str) -> bool:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == want:
        print(f"{path.name} is up to date")
        return True
    sys.stdout.writelines(difflib.unified_diff(
        current.splitlines(keepends=True), want.splitlines(keepends=True), str(path), "regenerated"))
    print(f"{path} is stale: run python3 deploy/prometheus/generate-alerts.py", file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-selector", default=DEFAULT_JOB_SELECTOR,
                        help=f"label matchers for the exporter's jobs (default {DEFAULT_JOB_SELECTOR})")
    parser.add_argument("--backup-max-age", default=DEFAULT_BACKUP_MAX_AGE,
                        help="AvepointBackupStale fires when a module's last successful backup is older "
                             f"than this Prometheus duration (default {DEFAULT_BACKUP_MAX_AGE})")
    parser.add_argument("--output-dir", type=Path,
                        help="write both files here instead of over the shipped ones")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the shipped files are not what the template makes")
    args = parser.parse_args()
    if args.check and args.output_dir:
        parser.error("--check compares the shipped files; it takes no --output-dir")

    rules_text = render_rules(TEMPLATE.read_text(encoding="utf-8"), args.job_selector, args.backup_max_age)
    promtool_check(rules_text)
    promrule = load_prometheusrule_module()
    operator_text = promrule.render(rules_text)
    promrule.verify(operator_text, rules_text)

    rules_path, operator_path = RULES, PROMETHEUSRULE
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        rules_path, operator_path = args.output_dir / RULES.name, args.output_dir / PROMETHEUSRULE.name
    if args.check:
        ok = compare(rules_path, rules_text) & compare(operator_path, operator_text)
        return 0 if ok else 1
    rules_path.write_text(rules_text, encoding="utf-8")
    operator_path.write_text(operator_text, encoding="utf-8")
    print(f"wrote {rules_path} and {operator_path} (job selector {args.job_selector.strip()}, "
          f"backup max age {args.backup_max_age.strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
