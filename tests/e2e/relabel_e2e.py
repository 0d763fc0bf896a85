#!/usr/bin/env python3
"""End-to-end check of deploy/prometheus/prometheus-sd.yml's relabelling
(stdlib only; needs the `prometheus` binary, Debian package prometheus).

    python3 tests/e2e/relabel_e2e.py [--prometheus PATH]

1. starts a fake exporter on 127.0.0.1 that serves /sd (30 customers in the
   contract's format), /probe (records each request) and /metrics;
2. runs Prometheus with a copy of prometheus-sd.yml and its rule file (only
   the exporter address, scrape_interval and scrape_timeout substituted);
3. checks, through Prometheus' API and the requests the fake exporter saw:
   - the avepoint-probe job keeps exactly the customers whose hashmod of the
     customer id is 0 (modulus 3, computed here as Prometheus does: the
     last 8 bytes of the MD5 as a big-endian integer), drops the others;
   - each kept target scrapes /probe?customer_id=<id> on the exporter's
     address, with labels customer_id, organization (from /sd) and
     instance = the exporter's address;
   - the probes arrive with X-Prometheus-Scrape-Timeout-Seconds;
   - the probe job has honor_labels: true, so the probed series keep their
     own customer_id / organization: avepoint_scan_profile_up and
     avepoint_customer_info of each kept customer carry exactly its
     customer_id and organization, and no series has exported_customer_id
     or exported_organization;
   - the avepoint job scrapes /metrics and drops avepoint_scan_*,
     avepoint_customer_* and avepoint_backup_* series, keeping
     avepoint_collector_last_success_timestamp_seconds (exporter-level).

Everything listens on 127.0.0.1 only; bounded by --timeout (60 s); the
Prometheus it started is killed on exit. Without the prometheus binary it
prints SKIP and exits 0 unless --require is given.
Exit status: 0 good (or skipped), 1 a check failed, 2 setup problem.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
CUSTOMERS = [str(uuid.UUID(int=0xCAF90000_0000_4000_8000_000000000000 + i)) for i in range(30)]
ORGANIZATION = {c: "Org %d" % i for i, c in enumerate(CUSTOMERS)}
MODULUS, SHARD = 3, 0


def hashmod(value, modulus):
    """Prometheus' relabel action hashmod for one source label."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


class FakeExporter(BaseHTTPRequestHandler):
    probes = []  # (customer_id, scrape timeout header)
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain; version=0.0.4"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        if url.path == "/sd":
            groups = [{"targets": [c], "labels": {"customer_id": c, "organization": ORGANIZATION[c]}}
                      for c in CUSTOMERS]
            self.reply(200, json.dumps(groups), "application/json")
        elif url.path == "/probe":
            ids = params.get("customer_id", [])
            if len(ids) != 1 or ids[0] not in CUSTOMERS:
                self.reply(400, "unknown customer_id\n")
                return
            with self.lock:
                self.probes.append((ids[0], self.headers.get("X-Prometheus-Scrape-Timeout-Seconds")))
            # Like the exporter: the per-customer series carry customer_id
            # (and avepoint_customer_info organization) themselves.
            self.reply(200, "avepoint_probe_success 1\navepoint_probe_duration_seconds 0.01\n"
                            'avepoint_scan_profile_up{customer_id="%s",profile_id="p1"} 1\n'
                            'avepoint_customer_info{customer_id="%s",organization="%s"} 1\n'
                            % (ids[0], ids[0], ORGANIZATION[ids[0]]))
        elif url.path == "/metrics":
            self.reply(200, 'avepoint_exporter_build_info{version="0.1.0",revision="test"} 1\n'
                            'avepoint_scan_profile_up{customer_id="x",profile_id="y"} 1\n'
                            'avepoint_customer_info{customer_id="x",organization="X"} 1\n'
                            'avepoint_backup_collector_up{collector="backup_jobs",customer_id="x"} 1\n'
                            'avepoint_backup_protected_objects{customer_id="x",service_type="microsoft_365",'
                            'service_module="onedrive"} 5\n'
                            'avepoint_collector_last_success_timestamp_seconds{collector="backup_jobs"} 1\n')
        else:
            self.reply(404, "not found\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def query(base, expr):
    return get_json(base + "/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]


def probe_job_honors_labels(config_text):
    """honor_labels of the avepoint-probe job in a Prometheus config (YAML text)."""
    # From this job's job_name up to the next job's (Prometheus' own dump).
    m = re.search(r"job_name: avepoint-probe\n(.*?)(?:job_name:|\Z)", config_text, re.S)
    return bool(m and re.search(r"^\s*honor_labels: true\s*$", m.group(1), re.M))


def prepare(dst, exporter):
    with open(os.path.join(PROM_DIR, "prometheus-sd.yml"), encoding="utf-8") as f:
        text = f.read()
    for old, new in (("localhost:10290", exporter), ("scrape_interval: 60s", "scrape_interval: 1s"),
                     ("scrape_timeout: 30s", "scrape_timeout: 1s"), ("localhost:9093", "127.0.0.1:9")):
        if old not in text:
            raise SystemExit("prometheus-sd.yml no longer contains %r; update %s" % (old, __file__))
        text = text.replace(old, new)
    with open(os.path.join(dst, "prometheus-sd.yml"), "w", encoding="utf-8") as f:
        f.write(text)
    for rule_file in re.findall(r"^rule_files:\n((?:\s+- .+\n)+)", text, re.M)[0].split():
        if rule_file != "-":
            shutil.copy(os.path.join(PROM_DIR, rule_file), dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", default=shutil.which("prometheus"))
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--require", action="store_true", help="fail instead of skipping without prometheus")
    a = ap.parse_args()
    if not a.prometheus:
        print("SKIP relabel_e2e: no prometheus binary (Debian package prometheus)")
        return 1 if a.require else 0

    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeExporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exporter = "127.0.0.1:%d" % server.server_address[1]
    pport = free_port()
    tmp = tempfile.mkdtemp(prefix="relabel-e2e-")
    proc = None
    try:
        prepare(tmp, exporter)
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        proc = subprocess.Popen([a.prometheus, "--config.file=" + os.path.join(tmp, "prometheus-sd.yml"),
                                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % pport],
                                stdout=log, stderr=subprocess.STDOUT)
        base = "http://127.0.0.1:%d" % pport
        want = sorted(c for c in CUSTOMERS if hashmod(c, MODULUS) == SHARD)
        deadline = time.monotonic() + a.timeout
        probe_targets, probed, drop_checked = [], set(), None
        profile_up, customer_info, exported = [], [], []
        while time.monotonic() < deadline:
            time.sleep(1)
            if proc.poll() is not None:
                break
            try:
                targets = get_json(base + "/api/v1/targets")["data"]
                probe_targets = [t for t in targets["activeTargets"] if t["labels"].get("job") == "avepoint-probe"]
                with FakeExporter.lock:
                    probed = {c for c, _ in FakeExporter.probes}
                build = get_json(base + "/api/v1/query?query=" + urllib.parse.quote(
                    'avepoint_exporter_build_info{job="avepoint"}'))["data"]["result"]
                leaked = get_json(base + "/api/v1/query?query=" + urllib.parse.quote(
                    '{job="avepoint", __name__=~"avepoint_(scan|customer|backup|subscription)_.*"}'))["data"]["result"]
                kept = get_json(base + "/api/v1/query?query=" + urllib.parse.quote(
                    'avepoint_collector_last_success_timestamp_seconds{job="avepoint"}'))["data"]["result"]
                drop_checked = (len(build), len(leaked), len(kept))
                profile_up = query(base, 'avepoint_scan_profile_up{job="avepoint-probe"}')
                customer_info = query(base, 'avepoint_customer_info{job="avepoint-probe"}')
                exported = query(base, '{exported_customer_id!=""} or {exported_organization!=""}')
            except OSError:
                continue
            if (len(probe_targets) == len(want) and probed >= set(want) and drop_checked[0] > 0
                    and len(profile_up) >= len(want) and len(customer_info) >= len(want)):
                break

        errors = []
        if proc.poll() is not None:
            errors.append("prometheus exited: see %s" % os.path.join(tmp, "prometheus.log"))
        got = sorted(t["labels"].get("customer_id", "") for t in probe_targets)
        if got != want:
            errors.append("avepoint-probe targets %s, want the %d customers of shard %d: %s" % (got, len(want), SHARD, want))
        for t in probe_targets:
            c = t["labels"].get("customer_id")
            want_url = "http://%s/probe?customer_id=%s" % (exporter, c)
            if t["scrapeUrl"] != want_url:
                errors.append("target %s: scrapeUrl %s, want %s" % (c, t["scrapeUrl"], want_url))
            if t["labels"].get("instance") != exporter:
                errors.append("target %s: instance %r, want %s" % (c, t["labels"].get("instance"), exporter))
            if not t["labels"].get("organization", "").startswith("Org "):
                errors.append("target %s: organization label from /sd missing" % c)
        with FakeExporter.lock:
            probes = list(FakeExporter.probes)
        if set(c for c, _ in probes) != set(want):
            errors.append("customers probed %s, want %s" % (sorted({c for c, _ in probes}), want))
        if any(h is None for _, h in probes):
            errors.append("a probe came without X-Prometheus-Scrape-Timeout-Seconds")
        if drop_checked is None or drop_checked[0] == 0:
            errors.append("avepoint job: no avepoint_exporter_build_info scraped from /metrics")
        elif drop_checked[1]:
            errors.append("avepoint job: avepoint_scan_*/customer_*/backup_* series from /metrics were not dropped")
        elif not drop_checked[2]:
            errors.append("avepoint job: avepoint_collector_last_success_timestamp_seconds was dropped")
        try:
            loaded = get_json(base + "/api/v1/status/config")["data"]["yaml"]
        except OSError as e:
            loaded = ""
            errors.append("cannot read the loaded config: %s" % e)
        if loaded and not probe_job_honors_labels(loaded):
            errors.append("avepoint-probe job: honor_labels is not true (the probed customer_id "
                          "would become exported_customer_id)")
        for name, series in (("avepoint_scan_profile_up", profile_up), ("avepoint_customer_info", customer_info)):
            got = sorted(s["metric"].get("customer_id", "") for s in series)
            if got != want:
                errors.append("%s{job=\"avepoint-probe\"}: customer_id values %s, want one per kept customer %s"
                              % (name, got, want))
            for s in series:
                c = s["metric"].get("customer_id", "")
                if s["metric"].get("organization") != ORGANIZATION.get(c):
                    errors.append("%s{customer_id=%r}: organization %r, want %r"
                                  % (name, c, s["metric"].get("organization"), ORGANIZATION.get(c)))
        if exported:
            errors.append("%d series with exported_customer_id/exported_organization, e.g. %s"
                          % (len(exported), exported[0]["metric"]))
        for e in errors:
            print("  FAIL: " + e)
        if errors:
            return 1
        print("relabel_e2e: %d of %d customers on shard %d, each probed at /probe?customer_id=<id> "
              "with customer_id/organization/instance labels; honor_labels: no exported_* labels; "
              "/metrics job drops avepoint_scan_*/customer_*/backup_*, keeps the collector timestamp"
              % (len(want), len(CUSTOMERS), SHARD))
        return 0
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
