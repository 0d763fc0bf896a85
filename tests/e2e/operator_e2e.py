#!/usr/bin/env python3
"""End to end as prometheus-operator scrapes the exporter: the shipped
ServiceMonitor and ScrapeConfig (deploy/kubernetes/) turned into the scrape
jobs the operator generates, run by a real Prometheus against the real
exporter (`demo`). Needs the prometheus binary and PyYAML.

    python3 tests/e2e/operator_e2e.py --exporter target/release/avepoint-exporter

How the jobs are reproduced (prometheus-operator, pkg/prometheus/promcfg.go,
read at commit 6adcebc5076c34f4f55f8f5f7b1e528929373ac7):
  * ServiceMonitor, ConfigGenerator.generateServiceMonitorConfig: job_name
    serviceMonitor/<ns>/<name>/<i>; honor_labels from the endpoint (false
    unless set; AddHonorLabels); interval, scrapeTimeout, path; relabel_configs
    = initRelabelings() (job -> __tmp_prometheus_job_name), a keep per
    selector matchLabels key on __meta_kubernetes_service_label_<k> and
    ..._labelpresent_<k> with regex "(<v>);true", a keep on
    __meta_kubernetes_endpoint_port_name == the endpoint's port (the
    "endpoints" role, defaultEndpointRoleFlavor without EndpointSlice),
    node/pod from __meta_kubernetes_endpoint_address_target_kind;..._name,
    namespace, service, pod, container from the kubernetes_sd meta labels,
    generateRunningFilter() (drop pods Failed|Succeeded), job from the
    Service name, endpoint = the port name, then the endpoint's relabelings;
    metric_relabel_configs = the endpoint's metricRelabelings
    (generateRelabelConfig: action lower-cased).
    Kubernetes service discovery is replaced by a static target carrying the
    __meta_kubernetes_* labels that kubernetes_sd (role endpoints) gives the
    exporter's pod behind the shipped Service (deploy/kubernetes/service.yaml:
    its name, labels and port name; the Deployment's container name), so
    every relabelling step above runs in Prometheus as generated.
  * ScrapeConfig, ConfigGenerator.generateScrapeConfig: job_name
    scrapeConfig/<ns>/<name>; honor_labels, metrics_path, interval, timeout
    from the spec; http_sd_configs; relabel_configs = initRelabelings() +
    spec.relabelings. The Service DNS name in the /sd URL and the __address__
    replacement are the only substitutions (the local exporter's address).
Intervals are shortened to 2 s (timeouts 1500 ms).

Checks, through Prometheus' API:
  1. the ServiceMonitor's target has exactly the labels job=<Service name>,
     endpoint=<port name>, namespace, service, pod, container, instance; the
     ScrapeConfig's targets job=scrapeConfig/<ns>/<name>, customer_id,
     organization, namespace, service, instance; all up;
  2. the API panels of dashboards/avepoint-scan-profiles.json (read now: every
     query on an avepoint_api_* metric whose aggregation keeps api_endpoint),
     with $job set to the ServiceMonitor's job, return series carrying
     api_endpoint (those on avepoint_api_requests_total and
     avepoint_api_request_duration_seconds at least one);
  3. AvepointAuthenticationFailing's selector on avepoint_api_requests_total
     (read from deploy/prometheus/avepoint-alerts.yml) sees
     api_endpoint="token" in the ServiceMonitor's job, and the whole
     expression evaluates;
  4. no series of any job has an exported_* label;
  5. the metricRelabelings drop avepoint_scan_*/avepoint_customer_*/
     avepoint_backup_* from the ServiceMonitor's job (but keep the
     exporter-level avepoint_collector_last_success_timestamp_seconds), and
     the ScrapeConfig's job carries them (profiles and backup collectors);
  6. the `exporter` label of AvepointExporterDown and AvepointProbeFailing
     (their expressions with `== 0` turned into `>= 0`) is
     "<namespace>/<service>" on both jobs, once for the exporter and once per
     customer: what the Alertmanager inhibitions match on;
  7. every alert rule loads and evaluates.

Everything listens on 127.0.0.1; the run is bounded by --timeout and the
processes it started are killed on exit. Exit 0 ok, 1 a check failed, 2 setup.
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
K8S = os.path.join(REPO, "deploy", "kubernetes")
RULES = os.path.join(REPO, "deploy", "prometheus", "avepoint-alerts.yml")
DASHBOARD = os.path.join(REPO, "dashboards", "avepoint-scan-profiles.json")
sys.path.insert(0, HERE)
from dashboard_e2e import BUILTINS, REGEX_SPECIAL  # noqa: E402
from harness import (run_bounded, Checks, Procs, Prom, SetupError, free_port, http_get, log,  # noqa: E402
                     result, wait_for, wait_until)

NAMESPACE = "monitoring"
POD = "avepoint-exporter-7d9f8b6c5d-x2x4q"
INTERVAL, TIMEOUT = "2s", "1500ms"


def load(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def sanitize(name):
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def relabel(r):
    """monitoringv1.RelabelConfig -> Prometheus relabel_config (generateRelabelConfig)."""
    out = {}
    for src, dst in (("sourceLabels", "source_labels"), ("separator", "separator"),
                     ("targetLabel", "target_label"), ("regex", "regex"), ("modulus", "modulus"),
                     ("replacement", "replacement")):
        if src in r:
            out[dst] = r[src]
    if "action" in r:
        out["action"] = r["action"].lower()
    return out


def service_monitor_job(sm, svc, container, address):
    """generateServiceMonitorConfig for endpoint 0, on a static target."""
    ns, ep = NAMESPACE, sm["spec"]["endpoints"][0]
    rl = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for k in sorted(sm["spec"]["selector"].get("matchLabels", {})):
        rl.append({"action": "keep",
                   "source_labels": ["__meta_kubernetes_service_label_" + sanitize(k),
                                     "__meta_kubernetes_service_labelpresent_" + sanitize(k)],
                   "regex": "(%s);true" % sm["spec"]["selector"]["matchLabels"][k]})
    if sm["spec"]["selector"].get("matchExpressions"):
        raise SetupError("matchExpressions are not reproduced here; extend operator_e2e.py")
    rl.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]})
    kind_name = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
    rl += [
        {"source_labels": kind_name, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}",
         "target_label": "node"},
        {"source_labels": kind_name, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}",
         "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
        {"target_label": "endpoint", "replacement": ep["port"]},
    ]
    rl += [relabel(r) for r in ep.get("relabelings", [])]
    meta = {"__meta_kubernetes_namespace": ns,
            "__meta_kubernetes_service_name": svc["metadata"]["name"],
            "__meta_kubernetes_endpoint_port_name": svc["spec"]["ports"][0]["name"],
            "__meta_kubernetes_endpoint_address_target_kind": "Pod",
            "__meta_kubernetes_endpoint_address_target_name": POD,
            "__meta_kubernetes_pod_name": POD,
            "__meta_kubernetes_pod_container_name": container,
            "__meta_kubernetes_pod_phase": "Running"}
    for k, v in svc["metadata"].get("labels", {}).items():
        meta["__meta_kubernetes_service_label_" + sanitize(k)] = v
        meta["__meta_kubernetes_service_labelpresent_" + sanitize(k)] = "true"
    job = {"job_name": "serviceMonitor/%s/%s/0" % (ns, sm["metadata"]["name"]),
           "honor_labels": bool(ep.get("honorLabels", False)),
           "scrape_interval": INTERVAL, "scrape_timeout": TIMEOUT,
           "metrics_path": ep.get("path", "/metrics"),
           "static_configs": [{"targets": [address], "labels": meta}],
           "relabel_configs": rl}
    if ep.get("metricRelabelings"):
        job["metric_relabel_configs"] = [relabel(r) for r in ep["metricRelabelings"]]
    return job


def scrape_config_job(sc, address):
    """generateScrapeConfig, with the Service address swapped for the exporter's."""
    spec = sc["spec"]
    svc_address = "avepoint-exporter.%s.svc:10290" % NAMESPACE
    rl = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    swapped = 0
    for r in spec.get("relabelings", []):
        r = relabel(r)
        if r.get("replacement") == svc_address:
            r["replacement"], swapped = address, swapped + 1
        rl.append(r)
    sds = []
    for sd in spec["httpSDConfigs"]:
        url = sd["url"].replace(svc_address, address)
        swapped += url != sd["url"]
        sds.append({"url": url, "refresh_interval": "5s"})
    if swapped != 2:
        raise SetupError("expected the Service address %s in the /sd URL and the __address__ relabelling"
                         % svc_address)
    job = {"job_name": "scrapeConfig/%s/%s" % (NAMESPACE, sc["metadata"]["name"]),
           "scrape_interval": INTERVAL, "scrape_timeout": TIMEOUT,
           "http_sd_configs": sds, "relabel_configs": rl}
    if "honorLabels" in spec:
        job["honor_labels"] = spec["honorLabels"]
    if "metricsPath" in spec:
        job["metrics_path"] = spec["metricsPath"]
    if spec.get("metricRelabelings"):
        job["metric_relabel_configs"] = [relabel(r) for r in spec["metricRelabelings"]]
    return job


def api_queries():
    """(panel title, expr) of every dashboard query on an avepoint_api_* metric
    whose outermost grouping keeps api_endpoint."""
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)

    def panels(ps):
        for p in ps or []:
            yield p
            yield from panels(p.get("panels"))
    out = []
    for p in panels(dash.get("panels")):
        for t in p.get("targets") or []:
            expr = t.get("expr") or ""
            groups = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            if "avepoint_api_" in expr and groups and "api_endpoint" in groups[0]:
                out.append((p.get("title", "?"), expr))
    return out


def substitute(expr, job):
    for k, v in sorted(BUILTINS, key=lambda kv: -len(kv[0])):
        expr = expr.replace(k, v)
    for var, value in (("job", REGEX_SPECIAL.sub(r"\\\\\1", job)), ("instance", ".+")):
        expr = expr.replace("${%s}" % var, value).replace("$" + var, value)
    if "$" in expr:
        raise SetupError("unsubstituted variable in %s" % expr)
    return expr


def rule_list():
    """Every rule of the file, in order (one alert name may have several
    rules, one per severity)."""
    with open(RULES, encoding="utf-8") as f:
        return [r for g in yaml.safe_load(f)["groups"] for r in g["rules"]]


def rules():
    return {r["alert"]: r["expr"] for r in rule_list()}


def start(a, procs, tmp):
    port = free_port()
    exporter = "127.0.0.1:%d" % port
    procs.start("exporter", [a.exporter, "demo", "--web.listen-address", exporter, "--customers",
                             str(a.customers), "--profiles-per-customer", "2"], os.path.join(tmp, "exporter.log"))

    def ready(url):
        try:
            return http_get(url)[0] == 200
        except urllib.error.HTTPError:
            return False
    wait_for("exporter /-/ready", lambda: ready("http://%s/-/ready" % exporter), procs, 60, 0.25)
    sm, sc, svc = load("servicemonitor.yaml"), load("scrapeconfig.yaml"), load("service.yaml")
    dep = load("deployment.yaml")
    container = dep["spec"]["template"]["spec"]["containers"][0]["name"]
    cfg = {"global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
           "rule_files": [RULES],
           "scrape_configs": [service_monitor_job(sm, svc, container, exporter), scrape_config_job(sc, exporter)]}
    path = os.path.join(tmp, "prometheus.yml")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1)
    pport = free_port()
    prom = Prom("http://127.0.0.1:%d" % pport)
    procs.start("prometheus", [a.prometheus, "--config.file=" + path, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                               "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                os.path.join(tmp, "prometheus.log"))
    wait_for("prometheus /-/ready", lambda: ready(prom.base + "/-/ready"), procs, 30)
    return prom, exporter, cfg, sm, sc, svc, container


def run(a, procs, tmp):
    prom, exporter, cfg, sm, sc, svc, container = start(a, procs, tmp)
    sm_job, sc_job = cfg["scrape_configs"][0]["job_name"], cfg["scrape_configs"][1]["job_name"]
    svc_name, port_name = svc["metadata"]["name"], svc["spec"]["ports"][0]["name"]
    probe_job = "scrapeConfig/%s/%s" % (NAMESPACE, sc["metadata"]["name"])
    c = Checks()

    def targets():
        return prom.api("/api/v1/targets")["data"]["activeTargets"]

    def settled():
        ts = targets()
        probes = [t for t in ts if t["scrapePool"] == sc_job]
        return (len(probes) == a.customers and all(t["health"] == "up" for t in ts)
                and (prom.scalar('min(count_over_time(up[1m]))') or 0) >= 5
                and prom.scalar('count(avepoint_api_request_duration_seconds_count{api_endpoint="scan_profile"})'))
    wait_until(procs, a.data_timeout, settled)

    # 1. target labels
    ts = targets()
    sm_t = [t for t in ts if t["scrapePool"] == sm_job]
    want = {"job": svc_name, "endpoint": port_name, "namespace": NAMESPACE, "service": svc_name, "pod": POD,
            "container": container, "instance": exporter}
    c.expect(len(sm_t) == 1 and sm_t[0]["labels"] == want and sm_t[0]["health"] == "up",
             "ServiceMonitor target labels as the operator sets them: %s" % want,
             "ServiceMonitor targets: %s, want one with %s" % ([(t["labels"], t["health"]) for t in sm_t], want))
    probes = [t for t in ts if t["scrapePool"] == sc_job]
    bad = [t["labels"] for t in probes if set(t["labels"]) != {"job", "instance", "customer_id", "organization",
                                                               "namespace", "service"}
           or t["labels"]["job"] != probe_job or t["labels"]["namespace"] != NAMESPACE
           or t["labels"]["service"] != svc_name or t["health"] != "up"]
    c.expect(len(probes) == a.customers and not bad,
             "ScrapeConfig: %d targets, job %s, customer_id, organization, namespace, service, up"
             % (len(probes), probe_job), "ScrapeConfig targets: %d, bad %s" % (len(probes), bad[:2]))

    # 2. dashboard API panels
    queries = api_queries()
    if not queries:
        c.fail("no dashboard query on avepoint_api_* grouped by api_endpoint in %s" % DASHBOARD)
    for title, expr in queries:
        q = substitute(expr, svc_name)
        series = result(prom, q)
        labelled = [s["metric"] for s in series if s["metric"].get("api_endpoint")]
        other = [s["metric"] for s in series if not s["metric"].get("api_endpoint") and s["metric"]]
        must = re.search(r"avepoint_api_(requests_total|request_duration_seconds)", q) and "code=" not in q
        ok = not other and (labelled or not must)
        c.expect(ok, "panel %r: %d series with api_endpoint (%s)"
                 % (title, len(labelled), ", ".join(sorted({m["api_endpoint"] for m in labelled}))),
                 "panel %r: %s: %d with api_endpoint, without: %s" % (title, q, len(labelled), other[:2]))

    # 3. the auth alert's selector
    exprs = rules()
    auth = exprs["AvepointAuthenticationFailing"]
    sel = re.search(r'avepoint_api_requests_total\{[^}]*api_endpoint="token"[^}]*\}', auth)
    if not sel:
        c.fail("AvepointAuthenticationFailing has no avepoint_api_requests_total{api_endpoint=\"token\"} selector")
    else:
        token = re.sub(r',?\s*code=~?"[^"]*"', "", sel.group(0))
        seen = result(prom, 'count by(job, api_endpoint) (%s)' % token)
        c.expect([s["metric"] for s in seen] == [{"job": svc_name, "api_endpoint": "token"}],
                 "auth alert selector %s sees api_endpoint=\"token\" in job %s" % (token, svc_name),
                 "auth alert selector %s: %s" % (token, seen))
        r = prom.query(auth)
        c.expect(r.get("status") == "success", "AvepointAuthenticationFailing evaluates",
                 "AvepointAuthenticationFailing: %s" % r.get("error"))

    # 4. no exported_* labels
    series = prom.api("/api/v1/series", **{"match[]": '{job=~".+"}', "start": "%.0f" % (time.time() - 300)})["data"]
    exported = sorted({k for s in series for k in s if k.startswith("exported_")})
    c.expect(series and not exported, "%d series, none with an exported_* label" % len(series),
             "exported_* labels: %s" % exported)

    # 5. metricRelabelings
    leaked = prom.scalar('count({job="%s", __name__=~"avepoint_(scan|customer|backup|subscription)_.*"})' % svc_name)
    probed = prom.scalar('count(last_over_time(avepoint_scan_profile_up{job="%s"}[30s]))' % probe_job)
    c.expect(not leaked and probed == a.customers * 2,
             "ServiceMonitor job has no avepoint_scan_*/customer_*/backup_*; ScrapeConfig job %d profiles" % probed,
             "ServiceMonitor job leaks %s scan/customer/backup series; ScrapeConfig job has %s profiles"
             % (leaked, probed))
    backup = prom.scalar('count(last_over_time(avepoint_backup_collector_up{job="%s"}[30s]))' % probe_job)
    kept = prom.scalar('count(last_over_time(avepoint_collector_last_success_timestamp_seconds{job="%s"}[30s]))'
                       % svc_name)
    c.expect(backup == a.customers * 3 and kept == 4,
             "ScrapeConfig job %d avepoint_backup_collector_up (customers x 3 per-customer collectors); "
             "ServiceMonitor job keeps avepoint_collector_last_success_timestamp_seconds of all 4 collectors" % backup,
             "ScrapeConfig job has %s avepoint_backup_collector_up (want %d); ServiceMonitor job has %s "
             "avepoint_collector_last_success_timestamp_seconds (want 4)" % (backup, a.customers * 3, kept))

    # 6. the alerts' exporter label
    for alert, n in (("AvepointExporterDown", 1), ("AvepointProbeFailing", a.customers)):
        got = result(prom, exprs[alert].replace("== 0", ">= 0"))
        values = {s["metric"].get("exporter") for s in got}
        c.expect(len(got) == n and values == {"%s/%s" % (NAMESPACE, svc_name)},
                 "%s: %d series, exporter=%s/%s" % (alert, n, NAMESPACE, svc_name),
                 "%s: %d series (want %d), exporter values %s" % (alert, len(got), n, values))

    # 7. rules
    groups = (prom.api("/api/v1/rules").get("data") or {}).get("groups") or []
    loaded = [r for g in groups for r in g.get("rules") or []]
    broken = ["%s: %s" % (r.get("name"), r.get("lastError")) for r in loaded if r.get("health") == "err"]
    want = len(rule_list())
    c.expect(len(loaded) == want and not broken, "%d alert rules loaded, none in error" % len(loaded),
             "rules: %d of %d loaded, errors %s" % (len(loaded), want, broken))
    return c.failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--customers", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--data-timeout", type=float, default=45, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not os.access(a.exporter, os.X_OK) or not shutil.which(a.prometheus):
        log("SETUP ERROR: need an executable --exporter and the prometheus binary")
        return 2
    procs, tmp = Procs(), tempfile.mkdtemp(prefix="avepoint-operator-e2e-")

    return run_bounded('operator e2e', a.timeout, lambda: run(a, procs, tmp), procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
