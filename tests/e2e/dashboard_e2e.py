#!/usr/bin/env python3
"""End-to-end check of the Grafana dashboard and the alert rules (stdlib only).

    python3 tests/e2e/dashboard_e2e.py --exporter target/release/avepoint-exporter

1. starts `EXPORTER demo --web.listen-address 127.0.0.1:PORT` and waits for /-/ready;
2. runs tests/e2e/dashboard_lint.py against its /metrics page;
3. runs Prometheus with a copy of deploy/prometheus/prometheus.yml (only the
   target address, scrape_interval and scrape_timeout substituted) and the rule
   files it names, until ~20 s of samples are stored;
4. pins the evaluation time to a scrape where at least one profile was fetched
   (the demo's simulated 429s make the exporter back off now and then, and a
   scrape in a back-off has no per-profile series), then
   resolves the dashboard's template variables from Prometheus, substitutes
   them (and $__rate_interval etc.) in every panel query and runs each one:
   each must succeed and return at least one series;
5. checks every alert rule is loaded and its expression evaluates.

Everything listens on 127.0.0.1 only, the whole run is bounded by --timeout,
and the processes it started are killed on exit, failure or interrupt.
Exit status: 0 all good, 1 a check failed, 2 setup problem.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dashboard_lint  # noqa: E402

# Grafana's built-in variables, replaced the way Grafana would for a short range.
BUILTINS = [
    ("$__rate_interval_ms", "60000"), ("${__rate_interval_ms}", "60000"),
    ("$__rate_interval", "1m"), ("${__rate_interval}", "1m"),
    ("$__interval_ms", "15000"), ("${__interval_ms}", "15000"),
    ("$__interval", "15s"), ("${__interval}", "15s"),
    ("$__range_s", "3600"), ("${__range_s}", "3600"),
    ("$__range_ms", "3600000"), ("${__range_ms}", "3600000"),
    ("$__range", "1h"), ("${__range}", "1h"),
]
REGEX_SPECIAL = re.compile(r"""([$^*{}\[\]'+?.()|\\])""")


class SetupError(Exception):
    pass


class Deadline(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


class Procs:
    """Child processes started here, each in its own process group."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, logfile):
        out = open(logfile, "wb")
        try:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            out.close()
            raise SetupError("cannot start %s (%s): %s" % (name, argv[0], e))
        self.procs.append((name, p, out, logfile))
        return p

    def check_alive(self):
        for name, p, _, logfile in self.procs:
            if p.poll() is not None:
                raise SetupError("%s exited with status %s\n%s" % (name, p.returncode, tail(logfile)))

    def stop_all(self):
        for name, p, out, _ in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                p.wait(timeout=5)
            out.close()
        self.procs = []


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + l for l in lines[-n:])


def wait_for(what, fn, procs, timeout, interval=0.5):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        procs.check_alive()
        try:
            r = fn()
            if r:
                return r
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise SetupError("timed out after %ds waiting for %s%s" % (timeout, what, " (last error: %s)" % last if last else ""))


class Prom:
    def __init__(self, base):
        self.base = base
        # Evaluation time of instant queries: None for "now"; pinned once the
        # data is there, so every panel and rule sees the same scrape.
        self.at = None

    def api(self, path, **params):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(url, timeout=15) as r:
                body = json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read().decode())
            except ValueError:
                body = {"status": "error", "error": "HTTP %s" % e.code}
        return body

    def query(self, expr):
        at = self.at if self.at is not None else time.time()
        return self.api("/api/v1/query", query=expr, time="%.3f" % at)

    def scalar(self, expr):
        r = self.query(expr)
        res = (r.get("data") or {}).get("result") or []
        return float(res[0]["value"][1]) if res else None


def prepare_prometheus_config(src_dir, dst_dir, target, interval, timeout):
    """Copy prometheus.yml and its rule files, substituting target and intervals."""
    src = os.path.join(src_dir, "prometheus.yml")
    with open(src, encoding="utf-8") as f:
        text = f.read()
    subs = [
        (r"\blocalhost:10290\b", target, "target localhost:10290"),
        (r"(\bscrape_interval:\s*)\S+", r"\g<1>" + interval, "scrape_interval"),
        (r"(\bscrape_timeout:\s*)\S+", r"\g<1>" + timeout, "scrape_timeout"),
    ]
    for pattern, repl, what in subs:
        text, n = re.subn(pattern, repl, text)
        if not n:
            raise SetupError("%s not found in %s: update dashboard_e2e.py with the file" % (what, src))
    with open(os.path.join(dst_dir, "prometheus.yml"), "w", encoding="utf-8") as f:
        f.write(text)
    # rule_files: a block list of relative paths (globs not supported here).
    m = re.search(r"^rule_files:\s*\n((?:[ \t]*(?:-.*|#.*)?\n)+)", text, re.M)
    rule_files = re.findall(r"^[ \t]*-[ \t]*['\"]?([^'\"#\n]+?)['\"]?[ \t]*$", m.group(1), re.M) if m else []
    if not rule_files:
        raise SetupError("no rule_files in %s" % src)
    for rf in rule_files:
        if os.path.isabs(rf) or ".." in rf:
            raise SetupError("rule file path %r should be relative to prometheus.yml" % rf)
        os.makedirs(os.path.dirname(os.path.join(dst_dir, rf)) or dst_dir, exist_ok=True)
        shutil.copy(os.path.join(src_dir, rf), os.path.join(dst_dir, rf))
    return rule_files


def regex_escape(value):
    # Like Grafana's Prometheus data source for multi-value regex variables:
    # regex metacharacters get a backslash, doubled inside the PromQL string.
    return REGEX_SPECIAL.sub(r"\\\\\1", value).replace('"', '\\"')


def substitute(expr, values):
    for k, v in BUILTINS:
        expr = expr.replace(k, v)
    for name in sorted(values, key=len, reverse=True):
        v = values[name]
        expr = expr.replace("${%s}" % name, v).replace("[[%s]]" % name, v)
        expr = re.sub(r"\$%s\b" % re.escape(name), lambda _m: v, expr)
    return expr


def resolve_variables(dash, prom, mode):
    """Values for each query variable, resolved in order (the chain).

    mode "values": regex alternation of every value Prometheus knows;
    mode "all": the variable's allValue (what Grafana sends for All)."""
    values = {}
    problems = []
    for v in (dash.get("templating") or {}).get("list") or []:
        name = v.get("name")
        if v.get("type") == "datasource":
            continue
        if v.get("type") != "query":
            problems.append("variable %s: unsupported type %s" % (name, v.get("type")))
            continue
        q = dashboard_lint.variable_query(v)
        q = substitute(q, values)
        m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
        if not m:
            problems.append("variable %s: cannot evaluate query %r" % (name, q))
            continue
        selector, label = m.group(1), m.group(2)
        params = {"start": "%.0f" % (time.time() - 3600), "end": "%.0f" % time.time()}
        if selector:
            params["match[]"] = selector.strip()
        r = prom.api("/api/v1/label/%s/values" % label, **params)
        if r.get("status") != "success":
            problems.append("variable %s: %s -> %s" % (name, q, r.get("error")))
            continue
        found = sorted(r.get("data") or [])
        if not found:
            problems.append("variable %s: %s returned no values" % (name, q))
            continue
        if mode == "all":
            values[name] = v.get("allValue") or ".*"
        else:
            values[name] = "(" + "|".join(regex_escape(x) for x in found) + ")"
        log("  variable %-13s %2d value(s): %s" % (name, len(found), ", ".join(found)[:100]))
    return values, problems


def check_panels(dash, prom, values, mode):
    failures = 0
    for p in dashboard_lint.iter_panels(dash.get("panels")):
        if p.get("type") == "row":
            continue
        for t in p.get("targets") or []:
            expr = substitute(t.get("expr") or "", values)
            label = "panel %-52s [%s] (%s)" % ("'%s'" % p.get("title"), t.get("refId"), mode)
            leftover = re.findall(r"\$\{?\w+\}?|\[\[\w+\]\]", expr)
            if leftover:
                log("FAIL %s unresolved variables %s" % (label, leftover))
                failures += 1
                continue
            r = prom.query(expr)
            if r.get("status") != "success":
                log("FAIL %s query error: %s\n       %s" % (label, r.get("error"), expr.replace("\n", " ")))
                failures += 1
                continue
            n = len(r["data"]["result"])
            if n == 0:
                log("FAIL %s returned no series\n       %s" % (label, expr.replace("\n", " ")))
                failures += 1
            else:
                log("ok   %s %d series" % (label, n))
    return failures


def check_rules(prom, expected_files):
    failures = 0
    r = prom.api("/api/v1/rules")
    groups = (r.get("data") or {}).get("groups") or []
    files = {os.path.basename(g.get("file", "")) for g in groups}
    for f in expected_files:
        if os.path.basename(f) not in files:
            log("FAIL rule file %s not loaded by Prometheus" % f)
            failures += 1
    n = 0
    for g in groups:
        for rule in g.get("rules") or []:
            n += 1
            name = rule.get("name")
            if rule.get("health") == "err":
                log("FAIL rule %s: %s" % (name, rule.get("lastError")))
                failures += 1
                continue
            q = prom.query(rule.get("query", ""))
            if q.get("status") != "success":
                log("FAIL rule %-38s query error: %s" % (name, q.get("error")))
                failures += 1
            else:
                log("ok   rule %-38s evaluates (%d series now, state %s)"
                    % (name, len(q["data"]["result"]), rule.get("state", rule.get("type"))))
    if n == 0:
        log("FAIL no alert rules loaded")
        failures += 1
    return failures


def run(a, procs, tmp):
    dashboard = a.dashboard
    with open(dashboard, encoding="utf-8") as f:
        dash = json.load(f)

    # 1. exporter
    if a.exporter_url:
        metrics_url = a.exporter_url
        parsed = urllib.parse.urlparse(metrics_url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SetupError("--exporter-url must be on loopback")
        target = "%s:%d" % (parsed.hostname, parsed.port)
        base = "%s://%s" % (parsed.scheme, target)
    else:
        port = free_port()
        target = "127.0.0.1:%d" % port
        base = "http://" + target
        metrics_url = base + "/metrics"
        log("starting exporter: %s demo --web.listen-address %s" % (a.exporter, target))
        procs.start("exporter", [a.exporter, "demo", "--web.listen-address", target],
                    os.path.join(tmp, "exporter.log"))

    def ready():
        try:
            return http_get(base + "/-/ready")[0] == 200
        except urllib.error.HTTPError:
            return False
    wait_for("exporter %s/-/ready" % base, ready, procs, 60)
    log("exporter ready at %s" % base)

    # 2. lint against the live /metrics
    log("== dashboard lint --metrics-url %s" % metrics_url)
    lint_rc = dashboard_lint.main([dashboard, "--metrics-url", metrics_url])

    # 3. prometheus with the example config
    cfgdir = os.path.join(tmp, "prometheus")
    os.makedirs(cfgdir)
    rule_files = prepare_prometheus_config(os.path.join(REPO, "deploy", "prometheus"), cfgdir,
                                           target, a.scrape_interval, a.scrape_timeout)
    pport = free_port()
    prom = Prom("http://127.0.0.1:%d" % pport)
    log("starting prometheus on 127.0.0.1:%d with a copy of deploy/prometheus/prometheus.yml" % pport)
    procs.start("prometheus", [a.prometheus, "--config.file=" + os.path.join(cfgdir, "prometheus.yml"),
                               "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                               "--web.listen-address=127.0.0.1:%d" % pport,
                               "--log.level=warn"],
                os.path.join(tmp, "prometheus.log"))

    def prom_ready():
        try:
            return http_get(prom.base + "/-/ready")[0] == 200
        except urllib.error.HTTPError:
            return False
    wait_for("prometheus /-/ready", prom_ready, procs, 30)

    def have_data():
        up = prom.scalar('max(up{instance="%s"})' % target)
        profiles = prom.scalar("count(avepoint_scan_profile_up)")
        samples = prom.scalar('min(count_over_time(up{instance="%s"}[5m]))' % target)
        return bool(up == 1 and profiles and samples is not None and samples >= a.min_samples)
    log("waiting for %d scrapes (up == 1 and avepoint_scan_profile_up series) ..." % a.min_samples)
    wait_for("%d successful scrapes of the exporter" % a.min_samples, have_data, procs, a.data_timeout, 1)
    # The demo's simulated 429s make the exporter back off now and then (its
    # Retry-After is longer than the 1 s scrape timeout allows): a scrape in a
    # back-off has every profile at up 0 and no other per-profile series, which
    # the per-profile panels rightly show as empty. Evaluate everything at the
    # moment of a scrape where profiles were fetched.
    def profiles_up():
        prom.at = time.time()
        if (prom.scalar('sum(avepoint_scan_profile_up{instance="%s"})' % target) or 0) > 0:
            return True
        prom.at = None
        return False
    wait_for("a scrape with at least one profile up", profiles_up, procs, 30, 0.2)
    log("data: %d avepoint_scan_profile_up series, %d profiles up (queries evaluated at %.3f)"
        % (prom.scalar("count(avepoint_scan_profile_up)"), prom.scalar("sum(avepoint_scan_profile_up)") or 0, prom.at))

    # 4. panels, with each variable as the alternation of its values and as All
    failures = 0
    for mode in ("values", "all"):
        log("== panel queries, variables = %s" % ("every value, as a regex alternation" if mode == "values" else "All (allValue)"))
        values, problems = resolve_variables(dash, prom, mode)
        for pr in problems:
            log("FAIL " + pr)
        failures += len(problems)
        failures += check_panels(dash, prom, values, mode)

    # 5. alert rules
    log("== alert rules (%s)" % ", ".join(rule_files))
    failures += check_rules(prom, rule_files)
    procs.check_alive()
    if lint_rc:
        failures += 1
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dashboard and alert rules end-to-end check against a live exporter.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--exporter", help="path to the avepoint-exporter binary (its `demo` subcommand is run)")
    src.add_argument("--exporter-url", help=argparse.SUPPRESS)  # an already running exporter's /metrics URL
    ap.add_argument("--dashboard", default=os.path.join(REPO, "dashboards", "avepoint-scan-profiles.json"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--timeout", type=float, default=180, help="overall limit in seconds (default 180)")
    ap.add_argument("--data-timeout", type=float, default=90, help=argparse.SUPPRESS)
    ap.add_argument("--min-samples", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--scrape-interval", default="1s", help=argparse.SUPPRESS)
    ap.add_argument("--scrape-timeout", default="1s", help=argparse.SUPPRESS)
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, config)")
    a = ap.parse_args(argv)
    if a.exporter and not os.access(a.exporter, os.X_OK):
        log("SETUP ERROR: %s is not an executable" % a.exporter)
        return 2

    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="avepoint-dashboard-e2e-")

    def on_alarm(signum, frame):
        raise Deadline()

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(max(1, int(a.timeout)))
    started = time.monotonic()
    rc = 1
    try:
        failures = run(a, procs, tmp)
        rc = 1 if failures else 0
        log("== dashboard e2e: %s (%d failure(s), %.0fs)" % ("OK" if rc == 0 else "FAILED", failures, time.monotonic() - started))
    except Deadline:
        log("FAIL overall timeout of %ds exceeded" % a.timeout)
        rc = 1
    except SetupError as e:
        log("SETUP ERROR: %s" % e)
        rc = 2
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        signal.alarm(0)
        if rc not in (0, 130):
            for name, _, _, logfile in procs.procs:
                log("-- last lines of %s log:\n%s" % (name, tail(logfile)))
        procs.stop_all()
        if a.keep_tmp:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
