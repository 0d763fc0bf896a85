#!/usr/bin/env python3
"""Every alert of deploy/prometheus/avepoint-alerts.yml in every deployment
mode, with input series labelled exactly as each mode's scrape config labels
them, through `promtool test rules` (stdlib only; needs promtool).

    python3 tests/e2e/alert_modes.py            # run
    python3 tests/e2e/alert_modes.py --print    # show the generated test file

The modes (MODES below) and the target labels each job gives its series:
  static            deploy/prometheus/prometheus.yml: job avepoint, instance;
                    everything from /metrics.
  sd                deploy/prometheus/prometheus-sd.yml: /metrics as job
                    avepoint, per-profile and customer series from job
                    avepoint-probe, whose targets add customer_id and
                    organization (from /sd) and whose instance is the
                    exporter's address. The per-customer backup series
                    come from that job too ("profiles" below).
  operator          prometheus-operator with the shipped ServiceMonitor (job =
                    the Service name avepoint-exporter, endpoint = the port
                    name, namespace, service, pod, container, instance = pod IP
                    and port; pkg/prometheus/promcfg.go) and ScrapeConfig (job
                    scrapeConfig/<ns>/avepoint-exporter-probe, instance = the
                    Service address, namespace and service set by its
                    relabelings, customer_id and organization from /sd).
  operator-static   the ServiceMonitor without its metricRelabelings drop,
                    static targets: everything from the pods' /metrics.
tests/e2e/operator_e2e.py checks with a real Prometheus that these are the
labels the shipped configs produce.

For each alert and mode the generated case asserts the exact label set of
the alert (the target labels that survive the rule's aggregation, the
`exporter` label, the alert's own labels) and that it does not fire before
its `for`. Annotations are the business of avepoint-alerts.test.yml (static
mode): the rules run here are a copy with annotations removed, so a case
checks labels, which routing and inhibition depend on.
Per-profile inputs carry only the raw status code (as with
metrics.last_status_state: none), so the status alerts are shown to work
without the state set.

The label sets are also what tests/e2e/alertmanager_e2e.py posts to a real
Alertmanager: alert_labels() is shared.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RULES = os.path.join(REPO, "deploy", "prometheus", "avepoint-alerts.yml")

OPERATOR_NS, OPERATOR_SVC = "monitoring", "avepoint-exporter"
MODES = {
    "static": {
        "metrics": {"job": "avepoint", "instance": "localhost:10290"},
        "probe": None,
        "exporter": "localhost:10290",
    },
    "sd": {
        "metrics": {"job": "avepoint", "instance": "localhost:10290"},
        "probe": {"job": "avepoint-probe", "instance": "localhost:10290"},
        "exporter": "localhost:10290",
    },
    "operator": {
        "metrics": {"job": "avepoint-exporter", "endpoint": "http-metrics", "namespace": OPERATOR_NS,
                    "service": OPERATOR_SVC, "pod": "avepoint-exporter-7d9f8b6c5d-x2x4q",
                    "container": "avepoint-exporter", "instance": "10.244.1.17:10290"},
        "probe": {"job": "scrapeConfig/%s/avepoint-exporter-probe" % OPERATOR_NS,
                  "instance": "avepoint-exporter.%s.svc:10290" % OPERATOR_NS,
                  "namespace": OPERATOR_NS, "service": OPERATOR_SVC},
        "exporter": "%s/%s" % (OPERATOR_NS, OPERATOR_SVC),
    },
    "operator-static": {
        "metrics": {"job": "avepoint-exporter", "endpoint": "http-metrics", "namespace": OPERATOR_NS,
                    "service": OPERATOR_SVC, "pod": "avepoint-exporter-7d9f8b6c5d-x2x4q",
                    "container": "avepoint-exporter", "instance": "10.244.1.17:10290"},
        "probe": None,
        "exporter": "%s/%s" % (OPERATOR_NS, OPERATOR_SVC),
    },
}
CUSTOMER = {"customer_id": "c1", "organization": "Contoso"}
PROFILE = {"profile_id": "p1"}
INFO = {"profile_name": "HR sites", "tenant_id": "t1", "tenant_domain": "contoso.onmicrosoft.com",
        "scan_mode": "advanced"}
BACKUP_JOB = {"job_type": "microsoft_365", "job_module": "exchange_online", "job_kind": "backup"}
BACKUP_MODULE = {"service_type": "microsoft_365", "service_module": "onedrive"}
SUBSCRIPTION = {"service_name": "cloud_backup_for_microsoft_365"}
USERS = {"tenant_id": "t1", "module": "mailbox", "protected": "false"}
CUSTOMER_INFO = {"customer_id": "c1", "organization": "Contoso", "management_mode": "partner_managed",
                 "country_or_region": "US"}
ALL = None  # keep every target label

# name: (source job, target labels kept by the rule (ALL or a list), has
#        `exporter`, input series [(metric, extra labels, values)], eval
#        time (after `for`), pending time (before it), alert's own labels)
ALERTS = {
    "AvepointScanFailed": ("profiles", ALL, False, [
        ("avepoint_scan_last_status", PROFILE, "3x40"),
        ("avepoint_scan_profile_info", dict(PROFILE, **INFO), "1x40"),
    ], "20m", "10m", {"severity": "critical", "state": "failed", "profile_name": "HR sites",
                      "tenant_domain": "contoso.onmicrosoft.com", **PROFILE}),
    "AvepointScanFinishedWithException": ("profiles", ALL, False, [
        ("avepoint_scan_last_status", PROFILE, "4x60"),
        ("avepoint_scan_profile_info", dict(PROFILE, **INFO), "1x60"),
    ], "40m", "20m", {"severity": "warning", "state": "finished_with_exception", "profile_name": "HR sites",
                      "tenant_domain": "contoso.onmicrosoft.com", **PROFILE}),
    "AvepointDailyReportStale": ("profiles", ALL, False, [
        ("avepoint_scan_last_update_timestamp_seconds", PROFILE, "-95400x40"),
        ("avepoint_scan_profile_info", dict(PROFILE, **INFO), "1x40"),
    ], "30m", "10m", {"severity": "warning", "profile_name": "HR sites",
                      "tenant_domain": "contoso.onmicrosoft.com", **PROFILE}),
    "AvepointObjectsRemovedOrOutOfPolicy": ("profiles", ALL, False, [
        ("avepoint_scan_removed_from_m365_or_out_of_policy", PROFILE, "3x20"),
        ("avepoint_scan_profile_info", dict(PROFILE, **INFO), "1x20"),
    ], "10m", "3m", {"severity": "warning", "profile_name": "HR sites",
                     "tenant_domain": "contoso.onmicrosoft.com", **PROFILE}),
    "AvepointProfileFetchFailing": ("profiles", ALL, True, [
        ("avepoint_scan_profile_info", dict(PROFILE, **INFO), "1x5"),
        ("avepoint_scan_profile_up", PROFILE, "1x5 0x30"),
    ], "25m", "15m", {"severity": "warning", "profile_name": "HR sites",
                      "tenant_domain": "contoso.onmicrosoft.com", **PROFILE}),
    "AvepointCustomerJobFailed": ("profiles", ALL, False, [
        ("avepoint_customer_job_status", {"customer_id": "c1"}, "2x90"),
        ("avepoint_customer_info", {"customer_id": "c1", "organization": "Contoso",
                                    "management_mode": "partner_managed", "country_or_region": "US"}, "1x90"),
    ], "70m", "50m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso"}),
    # The backup series come from the same job as the per-profile series
    # (per customer: /metrics in static mode, the customer's /probe in probe
    # mode). With avepoint_customer_info the organization is joined; without
    # it static mode has none and probe mode keeps the target's.
    "AvepointBackupJobFailed": ("profiles", ALL, False, [
        ("avepoint_backup_job_status", dict(BACKUP_JOB, customer_id="c1"), "7x60"),
        ("avepoint_customer_info", {"customer_id": "c1", "organization": "Contoso",
                                    "management_mode": "partner_managed", "country_or_region": "US"}, "1x60"),
    ], "40m", "20m", {"severity": "warning", "state": "failed_to_start", "customer_id": "c1",
                      "organization": "Contoso", **BACKUP_JOB}),
    "AvepointBackupStale": ("profiles", ALL, False, [
        ("avepoint_backup_last_success_timestamp_seconds", dict(BACKUP_JOB, customer_id="c1"), "-95400x40"),
    ], "30m", "10m", {"severity": "critical", "customer_id": "c1", **BACKUP_JOB}),
    "AvepointBackupCoverageIncomplete": ("profiles", ALL, False, [
        ("avepoint_backup_scanned_objects", dict(BACKUP_MODULE, customer_id="c1"), "500x1460"),
        ("avepoint_backup_protected_objects", dict(BACKUP_MODULE, customer_id="c1"), "480x1460"),
        ("avepoint_customer_info", {"customer_id": "c1", "organization": "Contoso",
                                    "management_mode": "partner_managed", "country_or_region": "US"}, "1x1460"),
    ], "1450m", "1400m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso",
                          **BACKUP_MODULE}),
    "AvepointBackupProtectedObjectsDropped": ("profiles", ALL, False, [
        ("avepoint_backup_protected_objects", dict(BACKUP_MODULE, customer_id="c1"), "1000x60 850x200"),
    ], "200m", "150m", {"severity": "warning", "customer_id": "c1", **BACKUP_MODULE}),
    "AvepointBackupCollectorFailing": ("profiles", ALL, True, [
        ("avepoint_backup_collector_up", {"customer_id": "c1", "collector": "backup_jobs"}, "1x5 0x90"),
        ("avepoint_backup_collector_up", {"customer_id": "c1", "collector": "backup_coverage"}, "1x95"),
        ("avepoint_customer_info", {"customer_id": "c1", "organization": "Contoso",
                                    "management_mode": "partner_managed", "country_or_region": "US"}, "1x95"),
    ], "70m", "50m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso",
                      "collector": "backup_jobs"}),
    "AvepointSubscriptionExpiring": ("profiles", ALL, False, [
        ("avepoint_subscription_expiry_timestamp_seconds", dict(SUBSCRIPTION, customer_id="c1"), "1728000x80"),
        ("avepoint_customer_info", CUSTOMER_INFO, "1x80"),
    ], "70m", "50m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso", **SUBSCRIPTION}),
    "AvepointSubscriptionCapacityHigh": ("profiles", ALL, False, [
        ("avepoint_subscription_capacity_bytes", dict(SUBSCRIPTION, customer_id="c1", kind="purchased"), "1000x80"),
        ("avepoint_subscription_capacity_bytes", dict(SUBSCRIPTION, customer_id="c1", kind="used"), "950x80"),
        ("avepoint_customer_info", CUSTOMER_INFO, "1x80"),
    ], "70m", "50m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso", **SUBSCRIPTION}),
    "AvepointSubscriptionsCollectorFailing": ("metrics", ALL, True, [
        ("avepoint_subscriptions_up", {}, "1x5 0x130"),
    ], "130m", "120m", {"severity": "warning"}),
    "AvepointBackupUsersUnprotected": ("profiles", ALL, False, [
        ("avepoint_backup_users", dict(USERS, customer_id="c1"), "2x1460"),
        ("avepoint_customer_info", CUSTOMER_INFO, "1x1460"),
    ], "1450m", "1400m", {"severity": "info", "customer_id": "c1", "organization": "Contoso", **USERS}),
    "AvepointAuthenticationFailing": ("metrics", ["job", "instance", "namespace", "service"], True, [
        ("avepoint_api_requests_total", {"api_endpoint": "token", "code": "401"}, "0x5 1+1x25"),
    ], "25m", "9m", {"severity": "critical", "code": "401", "reason": "token_refused"}),
    "AvepointUpstreamThrottling": ("metrics", ["job", "instance"], False, [
        ("avepoint_api_requests_total", {"api_endpoint": "scan_profile", "code": "200"}, "0+9x60"),
        ("avepoint_api_requests_total", {"api_endpoint": "scan_profile", "code": "429"}, "0+1x60"),
    ], "40m", "10m", {"severity": "warning", "api_endpoint": "scan_profile"}),
    "AvepointUpstreamBackoff": ("metrics", ["job", "instance"], False, [
        ("avepoint_api_backoffs_total", {}, "0x5 1x30"),
    ], "12m", "8m", {"severity": "warning"}),
    "AvepointDiscoveryFailing": ("metrics", ALL, False, [
        ("avepoint_discovery_errors_total", {}, "0 1x30"),
    ], "20m", "10m", {"severity": "warning", "reason": "never_succeeded"}),
    "AvepointConfigReloadFailed": ("metrics", ALL, False, [
        ("avepoint_exporter_config_last_reload_successful", {}, "1x10 0x20"),
    ], "20m", "13m", {"severity": "warning"}),
    "AvepointExporterDown": ("metrics", ALL, True, [
        ("up", {}, "1x2 0x10"),
        # Probe mode: every probe fails too; the alert must still be one.
        ("up@probe", dict(CUSTOMER), "1x2 0x10"),
        ("up@probe", {"customer_id": "c2", "organization": "Fabrikam"}, "1x2 0x10"),
    ], "10m", "5m", {"severity": "critical"}),
    "AvepointProbeFailing": ("probe", ALL, True, [
        ("up@metrics", {}, "1x20"),
        ("up", dict(CUSTOMER), "1x2 0x18"),
        ("up", {"customer_id": "c2", "organization": "Fabrikam"}, "1x20"),
    ], "15m", "10m", {"severity": "warning", "customer_id": "c1", "organization": "Contoso"}),
}


def job_labels(mode, job):
    """Target labels of a series from `job` (metrics, probe or profiles: the
    job that serves per-profile series in this mode) in `mode`."""
    m = MODES[mode]
    if job == "profiles":
        job = "probe" if m["probe"] else "metrics"
    if job == "probe":
        return dict(m["probe"], **CUSTOMER)
    return dict(m["metrics"])


def applies(alert, mode):
    return ALERTS[alert][0] != "probe" or MODES[mode]["probe"] is not None


def alert_labels(alert, mode, **extra):
    """The exact labels `alert` has in `mode`; `extra` overrides (e.g. another
    customer_id or instance for the Alertmanager scenarios)."""
    job, kept, exporter, _, _, _, own = ALERTS[alert]
    labels = job_labels(mode, job)
    if kept is not ALL:
        labels = {k: v for k, v in labels.items() if k in kept}
    labels = dict(labels, **own)
    if exporter:
        labels["exporter"] = MODES[mode]["exporter"]
    labels["alertname"] = alert
    labels.update(extra)
    return labels


def series_text(name, labels):
    return "%s{%s}" % (name, ",".join('%s="%s"' % (k, v.replace('"', '\\"')) for k, v in sorted(labels.items())))


def q(s):
    return "'" + s.replace("'", "''") + "'"


def build_tests():
    out = ["rule_files:", "  - rules.yml", "evaluation_interval: 1m", "tests:"]
    for alert, (job, _, _, inputs, at, pending, _) in ALERTS.items():
        for mode in MODES:
            if not applies(alert, mode):
                continue
            out += ["  - name: %s in mode %s" % (alert, mode), "    interval: 1m", "    input_series:"]
            for metric, extra, values in inputs:
                name, _, from_job = metric.partition("@")
                src = from_job or job
                if src == "probe" and not MODES[mode]["probe"]:
                    continue
                labels = job_labels(mode, src)
                labels.update(extra)
                out += ["      - series: " + q(series_text(name, labels)), "        values: " + q(values)]
            labels = alert_labels(alert, mode)
            del labels["alertname"]
            out += ["    alert_rule_test:",
                    "      - eval_time: " + pending, "        alertname: " + alert, "        exp_alerts: []",
                    "      - eval_time: " + at, "        alertname: " + alert, "        exp_alerts:",
                    "          - exp_labels:"]
            out += ["              %s: %s" % (k, q(v)) for k, v in sorted(labels.items())]
    # AvepointExporterAbsent: fires without build_info, silent with it, in every mode.
    for mode in MODES:
        labels = job_labels(mode, "metrics")
        out += ["  - name: AvepointExporterAbsent in mode %s" % mode, "    interval: 1m", "    input_series:",
                "      - series: " + q(series_text("up", labels)), "        values: '1x30'",
                "      - series: " + q(series_text("avepoint_exporter_build_info",
                                                   dict(labels, version="0.1.0", revision="abc"))),
                "        values: '1x30'",
                "    alert_rule_test:",
                "      - eval_time: 20m", "        alertname: AvepointExporterAbsent", "        exp_alerts: []"]
    return "\n".join(out) + "\n"


def rules_without_annotations(text):
    """The rules file with every `annotations:` block removed (YAML-free:
    annotations are the last key of each rule in this file, indented 8)."""
    out, skipping = [], False
    for line in text.splitlines():
        if line.startswith("        annotations:"):
            skipping = True
            continue
        if skipping and (line.startswith("          ") or not line.strip()):
            if not line.strip():
                skipping = False
                out.append(line)
            continue
        skipping = False
        out.append(line)
    stripped = "\n".join(out) + "\n"
    if "annotations:" in stripped or "runbook_url" in stripped:
        raise SystemExit("could not strip the annotations of %s" % RULES)
    return stripped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--print", action="store_true", help="print the generated test file and exit")
    a = ap.parse_args()
    tests = build_tests()
    if a.print:
        sys.stdout.write(tests)
        return 0
    with open(RULES, encoding="utf-8") as f:
        rules = rules_without_annotations(f.read())
    cases = tests.count("  - name: ")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "rules.yml"), "w", encoding="utf-8") as f:
            f.write(rules)
        with open(os.path.join(tmp, "tests.yml"), "w", encoding="utf-8") as f:
            f.write(tests)
        r = subprocess.run([a.promtool, "test", "rules", os.path.join(tmp, "tests.yml")],
                           capture_output=True, text=True, timeout=120)
    sys.stdout.write(r.stdout[-20000:] + r.stderr[-5000:])
    if r.returncode == 0:
        print("alert_modes: %d cases (%d alerts x modes %s) passed"
              % (cases, len(ALERTS) + 1, ", ".join(MODES)))
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
