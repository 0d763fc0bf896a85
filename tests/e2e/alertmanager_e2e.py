#!/usr/bin/env python3
"""The inhibitions of deploy/alertmanager/alertmanager.yml against a real
Alertmanager (Debian package prometheus-alertmanager; stdlib only).

    python3 tests/e2e/alertmanager_e2e.py [--alertmanager PATH]

Starts the alertmanager binary on 127.0.0.1 (no clustering) with a copy of
the shipped config whose webhook URLs point at a local sink, posts alerts
through its v2 API and reads back, per alert, `status.inhibitedBy`. The
alerts' labels are exactly those the rules give them in each deployment
mode (tests/e2e/alert_modes.py's alert_labels(), which that script checks
with promtool), so these scenarios run in the modes sd (plain Prometheus,
/sd + /probe), operator (ServiceMonitor + ScrapeConfig), static and
operator-static:
  1. customer A's failing probe inhibits A's own alerts of that probe
     target (scan, fetch and backup alerts), never customer B's;
  2. an exporter down inhibits that exporter's alerts (its /metrics
     alerts, in static mode every customer's scan and backup alerts, and,
     in probe mode, every customer's failing probe), never another
     exporter's;
  3. authentication failing (from the /metrics job) inhibits the profile
     fetch, backup collector and probe alerts of the same exporter (from
     the /probe job in probe mode), not another exporter's, and not
     unrelated alerts (a failed backup job is AvePoint's, not the token's).
Every expectation says inhibited or not; both kinds are asserted.

The whole run is bounded by --timeout; the process is killed on exit.
Exit status: 0 all good, 1 a check failed, 2 setup problem.
"""
import argparse
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from alert_modes import ALERTS, MODES, alert_labels  # noqa: E402
from harness import run_bounded, Procs, SetupError, free_port, log, wait_for  # noqa: E402

CONFIG = os.path.join(REPO, "deploy", "alertmanager", "alertmanager.yml")
# The per-customer alerts of the optional collectors (backup jobs,
# coverage, protected users, subscriptions): not the subscriptions
# collector's own failure, which comes from /metrics.
BACKUP_ALERTS = [name for name, (source, *_) in ALERTS.items()
                 if source == "profiles" and name.startswith(("AvepointBackup", "AvepointSubscription"))]


class Sink(http.server.BaseHTTPRequestHandler):
    """The webhook receivers: accept and count."""
    received = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Sink.received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def prepare(tmp, sink):
    with open(CONFIG, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r"url: https?://\S+", "url: %s" % sink, text)
    if n < 2:
        raise SetupError("expected the webhook URLs in %s, replaced %d" % (CONFIG, n))
    path = os.path.join(tmp, "alertmanager.yml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def api(base, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def other_exporter(mode, n):
    """Labels that make an alert exporter number n's in `mode` (same job)."""
    if MODES[mode]["exporter"].startswith("monitoring/"):
        ns = "tenant-%d" % n
        return {"namespace": ns, "exporter": "%s/avepoint-exporter" % ns}
    addr = "exporter-%d:10290" % n
    return {"instance": addr, "exporter": addr}


def in_namespace(labels, n):
    """prometheus-operator: exporter n lives in its own namespace, so its
    pod has its own name and IP (the /metrics instance), and its probes go
    to its own Service address (the /probe instance)."""
    if "pod" in labels:
        labels["pod"] = "avepoint-exporter-7d9f8b6c5d-%05d" % n
        labels["instance"] = "10.244.%d.17:10290" % n
    elif str(labels.get("instance", "")).endswith(".svc:10290"):
        labels["instance"] = "avepoint-exporter.%s.svc:10290" % labels["namespace"]
    return labels


def scenarios():
    """(mode, id, labels, want_inhibited, why) for every alert posted."""
    out = []

    def add(mode, key, alert, inhibited, why, n, **extra):
        extra = dict(other_exporter(mode, n), **extra)
        labels = alert_labels(alert, mode, **extra)
        if "namespace" in labels:
            labels = in_namespace(labels, n)
        # A scenario tag keeps the scenarios apart (no label of the rules'
        # `equal` lists, so it never decides an inhibition itself): each
        # scenario uses its own exporter.
        labels["e2e_case"] = key
        out.append((mode, key, labels, inhibited, why))

    for mode in ("sd", "operator"):
        # 1. customer isolation, exporter #1
        c = "%s-customers" % mode
        add(mode, c, "AvepointProbeFailing", False, "A's probe failing is itself not inhibited", 1)
        add(mode, c, "AvepointProfileFetchFailing", True, "A's fetch alert: A's probe is failing", 1)
        add(mode, c, "AvepointScanFailed", True, "A's scan alert: A's probe is failing", 1)
        add(mode, c, "AvepointProfileFetchFailing", False, "B's fetch alert: A's failure must not silence B", 1,
            customer_id="c2", organization="Fabrikam")
        add(mode, c, "AvepointScanFailed", False, "B's scan alert: A's failure must not silence B", 1,
            customer_id="c2", organization="Fabrikam")
        add(mode, c, "AvepointCustomerJobFailed", False, "B's job alert: A's failure must not silence B", 1,
            customer_id="c2", organization="Fabrikam")
        for alert in BACKUP_ALERTS:
            add(mode, c, alert, True, "A's backup alert: A's probe is failing", 1)
            add(mode, c, alert, False, "B's backup alert: A's failure must not silence B", 1,
                customer_id="c2", organization="Fabrikam")
        # 2. exporter down: #2 down, #3 up
        d = "%s-down" % mode
        add(mode, d, "AvepointExporterDown", False, "the outage page itself", 2)
        add(mode, d, "AvepointProbeFailing", True, "customer A's probe of the down exporter", 2)
        add(mode, d, "AvepointProbeFailing", True, "customer B's probe of the down exporter", 2,
            customer_id="c2", organization="Fabrikam")
        add(mode, d, "AvepointConfigReloadFailed", True, "the down exporter's /metrics alert", 2)
        add(mode, d, "AvepointProbeFailing", False, "another exporter's probe", 3)
        add(mode, d, "AvepointConfigReloadFailed", False, "another exporter's /metrics alert", 3)
        # 3. auth: #4 cannot authenticate, #5 can
        a = "%s-auth" % mode
        add(mode, a, "AvepointAuthenticationFailing", False, "the auth alert itself", 4)
        add(mode, a, "AvepointProfileFetchFailing", True, "fetch failing (probe job) of the same exporter", 4)
        add(mode, a, "AvepointProbeFailing", True, "a probe failing (probe job) of the same exporter", 4,
            customer_id="c2", organization="Fabrikam")
        add(mode, a, "AvepointScanFailed", False, "a scan result is not a consequence of auth", 4)
        add(mode, a, "AvepointProfileFetchFailing", False, "another exporter's fetch alert", 5)
        add(mode, a, "AvepointBackupCollectorFailing", True, "backup reads failing of the same exporter", 4)
        add(mode, a, "AvepointSubscriptionsCollectorFailing", True, "subscription reads failing of the same exporter", 4)
        add(mode, a, "AvepointBackupCollectorFailing", False, "another exporter's backup reads", 5)
        add(mode, a, "AvepointBackupJobFailed", False, "a failed backup job is not a consequence of auth", 4)
    for mode in ("static", "operator-static"):
        d = "%s-down" % mode
        add(mode, d, "AvepointExporterDown", False, "the outage page itself", 6)
        add(mode, d, "AvepointScanFailed", True, "the down exporter's scan alert", 6)
        add(mode, d, "AvepointScanFailed", False, "another exporter's scan alert", 7)
        for alert in BACKUP_ALERTS:
            add(mode, d, alert, True, "the down exporter's backup alert", 6)
            add(mode, d, alert, True, "the down exporter's backup alert of another customer", 6,
                customer_id="c2", organization="Fabrikam")
            add(mode, d, alert, False, "another exporter's backup alert", 7)
        a = "%s-auth" % mode
        add(mode, a, "AvepointAuthenticationFailing", False, "the auth alert itself", 8)
        add(mode, a, "AvepointProfileFetchFailing", True, "fetch failing of the same exporter", 8)
        add(mode, a, "AvepointProfileFetchFailing", False, "another exporter's fetch alert", 9)
        add(mode, a, "AvepointObjectsRemovedOrOutOfPolicy", False, "not a consequence of auth", 8)
        add(mode, a, "AvepointBackupCollectorFailing", True, "backup reads failing of the same exporter", 8)
        add(mode, a, "AvepointBackupCollectorFailing", False, "another exporter's backup reads", 9)
        add(mode, a, "AvepointBackupStale", False, "a stale backup is not a consequence of auth", 8)
    return out


def run(a, procs, tmp):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = "http://127.0.0.1:%d/hook" % server.server_address[1]
    config = prepare(tmp, sink)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    procs.start("alertmanager", [a.alertmanager, "--config.file=" + config,
                                 "--storage.path=" + os.path.join(tmp, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % port,
                                 "--cluster.listen-address=", "--log.level=warn"],
                os.path.join(tmp, "alertmanager.log"))
    wait_for("alertmanager /-/ready", lambda: urllib.request.urlopen(base + "/-/ready", timeout=2).status == 200,
             procs, 30)

    cases = scenarios()
    # Each scenario's tag must not be needed for correctness of other
    # scenarios' results: the scenarios use distinct exporters anyway.
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    api(base, "/api/v2/alerts", [{"labels": labels, "startsAt": starts, "endsAt": ends}
                                 for _, _, labels, _, _ in cases])

    def fetch():
        got = {}
        for alert in api(base, "/api/v2/alerts") or []:
            key = tuple(sorted(alert["labels"].items()))
            got[key] = alert["status"].get("inhibitedBy") or []
        return got

    want = {tuple(sorted(labels.items())): (inhibited, mode, why) for mode, _, labels, inhibited, why in cases}
    if len(want) != len(cases):
        raise SetupError("two scenarios post the same label set")

    def settled():
        got = fetch()
        return len(got) == len(want) and all(bool(got.get(k)) == w[0] for k, w in want.items())
    # The inhibitor learns about sources asynchronously: wait until the
    # answer matches or the time is up, then report what it is.
    deadline = time.monotonic() + a.settle
    while time.monotonic() < deadline and not settled():
        procs.check_alive()
        time.sleep(0.5)
    got = fetch()
    failures = 0
    for key, (inhibited, mode, why) in want.items():
        labels = dict(key)
        state = got.get(key)
        if state is None:
            log("FAIL %-15s %s not in Alertmanager" % (mode, labels["alertname"]))
            failures += 1
            continue
        verdict = "inhibited" if state else "not inhibited"
        ok = bool(state) == inhibited
        log("%s %-15s %-36s %-14s %s" % ("ok  " if ok else "FAIL", mode, labels["alertname"], verdict, why))
        failures += 0 if ok else 1
    server.shutdown()
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alertmanager", default=shutil.which("prometheus-alertmanager")
                    or shutil.which("alertmanager") or "alertmanager")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--settle", type=float, default=15, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not shutil.which(a.alertmanager):
        log("SETUP ERROR: no alertmanager binary %r (Debian package prometheus-alertmanager)" % a.alertmanager)
        return 2
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="avepoint-am-e2e-")

    return run_bounded('alertmanager e2e', a.timeout, lambda: run(a, procs, tmp), procs, tmp)


if __name__ == "__main__":
    sys.exit(main())
