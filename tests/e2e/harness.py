"""What the end-to-end checks share (stdlib only): child processes, the demo
exporter, Prometheus started on a copy of a shipped config, its HTTP API, and
the bounded run with its exit status.

dashboard_e2e.py, probe_e2e.py, operator_e2e.py and alertmanager_e2e.py
import these from here. dashboard_e2e and probe_e2e used to import each
other (dashboard_e2e needed probe_e2e's /sd reader and config copy, probe_e2e
dashboard_e2e's processes and Prometheus client), a loop that only worked
because of a function-level import; neither imports the other now.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROM_DIR = os.path.join(REPO, "deploy", "prometheus")
# prometheus-sd.yml shards the customers with `hashmod` over this modulus.
SHIPPED_MODULUS = 3


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
            terminate(p, 5)
            out.close()
        self.procs = []

    def stop(self, proc):
        """Stop one of the processes (a Prometheus between passes: stop_all
        would stop the exporter too)."""
        for i, (name, p, out, _) in enumerate(self.procs):
            if p is proc:
                terminate(p, 10)
                out.close()
                del self.procs[i]
                return


def terminate(p, grace):
    """SIGTERM the process group of `p`; SIGKILL it when `p` has not exited
    after `grace` seconds."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait(timeout=5)


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + l for l in lines[-n:])


def log_tails(procs):
    """Show the last lines of every started process' log (after a failure)."""
    for name, _, _, logfile in procs.procs:
        log("-- last lines of %s log:\n%s" % (name, tail(logfile)))


def run_bounded(title, timeout, run, procs, tmp):
    """Run `run()` (which returns its failure count) under an overall
    `timeout` in seconds, log the verdict as `== <title>: OK|FAILED`, show
    the started processes' logs when it failed, and always stop them and
    remove `tmp`. Exit status: 0 good, 1 a check failed, 2 setup problem."""
    def on_alarm(signum, frame):
        raise Deadline()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(timeout)))
    rc = 1
    try:
        failures = run()
        rc = 1 if failures else 0
        log("== %s: %s (%d failure(s))" % (title, "OK" if rc == 0 else "FAILED", failures))
    except Deadline:
        log("FAIL overall timeout of %ds exceeded" % timeout)
    except SetupError as e:
        log("SETUP ERROR: %s" % e)
        rc = 2
    finally:
        signal.alarm(0)
        if rc != 0:
            log_tails(procs)
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


def run_main(title, a, tmp_prefix, run):
    """The body of a check's main(): run `run(a, procs, tmp)` (which returns
    its failure count) under --timeout, interruptible by SIGTERM, log the
    verdict as `== <title>: OK|FAILED (n failure(s), Ns)`, show the logs
    when it failed, stop every process started and remove the temporary
    directory unless --keep-tmp. Exit status: 0 all good, 1 a check failed,
    2 setup problem, 130 interrupted."""
    procs = Procs()
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)

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
        log("== %s: %s (%d failure(s), %.0fs)" % (title, "OK" if rc == 0 else "FAILED", failures,
                                                  time.monotonic() - started))
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
            log_tails(procs)
        procs.stop_all()
        if a.keep_tmp:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


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


def wait_until(procs, seconds, cond, interval=1.0):
    """Poll cond() until it returns True or seconds pass; no exception on timeout."""
    end = time.monotonic() + seconds
    while True:
        procs.check_alive()
        try:
            if cond():
                return True
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


def wait_ready(what, base, procs, timeout, interval=0.5):
    """Wait until `base`/-/ready answers 200 (exporter and Prometheus alike)."""
    def ready():
        try:
            return http_get(base + "/-/ready")[0] == 200
        except urllib.error.HTTPError:
            return False
    wait_for(what, ready, procs, timeout, interval)


def start_demo(a, procs, tmp, interval=0.5):
    """Start `a.exporter demo` with a.customers and a.profiles_per_customer on
    a free loopback port and wait until it is ready; returns its host:port."""
    target = "127.0.0.1:%d" % free_port()
    base = "http://" + target
    argv = [a.exporter, "demo", "--web.listen-address", target, "--customers", str(a.customers),
            "--profiles-per-customer", str(a.profiles_per_customer)]
    log("starting exporter: %s" % " ".join(argv))
    procs.start("exporter", argv, os.path.join(tmp, "exporter.log"))
    wait_ready("exporter %s/-/ready" % base, base, procs, 60, interval)
    return target


class Checks:
    def __init__(self):
        self.failures = 0

    def ok(self, msg):
        log("ok   " + msg)

    def fail(self, msg):
        log("FAIL " + msg)
        self.failures += 1

    def expect(self, cond, good, bad):
        if cond:
            self.ok(good)
        else:
            self.fail(bad)
        return cond


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


def result(prom, expr):
    r = prom.query(expr)
    if r.get("status") != "success":
        raise SetupError("query %s: %s" % (expr, r.get("error")))
    return r["data"]["result"]


def start_prometheus(binary, procs, tmp, name, cfgdir, config):
    """Start Prometheus on cfgdir/config (its data in cfgdir/data) on a free
    loopback port and wait until it is ready; returns (Prom, process)."""
    pport = free_port()
    prom = Prom("http://127.0.0.1:%d" % pport)
    proc = procs.start(name, [binary, "--config.file=" + os.path.join(cfgdir, config),
                              "--storage.tsdb.path=" + os.path.join(cfgdir, "data"),
                              "--web.listen-address=127.0.0.1:%d" % pport, "--log.level=warn"],
                       os.path.join(tmp, name + ".log"))
    wait_ready("%s /-/ready" % name, prom.base, procs, 30)
    return prom, proc


def rule_files(text):
    """The rule_files of a Prometheus config: a block list of relative paths
    (globs not supported here)."""
    m = re.search(r"^rule_files:\s*\n((?:[ \t]*(?:-.*|#.*)?\n)+)", text, re.M)
    return re.findall(r"^[ \t]*-[ \t]*['\"]?([^'\"#\n]+?)['\"]?[ \t]*$", m.group(1), re.M) if m else []


def read_sd(base):
    status, body = http_get(base + "/sd")
    if status != 200:
        raise SetupError("/sd answered %s" % status)
    groups = json.loads(body)
    customers = {}
    for g in groups:
        targets, labels = g.get("targets") or [], g.get("labels") or {}
        if len(targets) != 1 or labels.get("customer_id") != targets[0] or not labels.get("organization"):
            raise SetupError("/sd group not in the contract's format: %s" % g)
        if targets[0] in customers:
            raise SetupError("/sd lists customer %s twice" % targets[0])
        customers[targets[0]] = labels["organization"]
    return customers


def prepare_sd(dst, exporter, modulus, interval, timeout):
    """Copy prometheus-sd.yml and its rule files with the substitutions."""
    src = os.path.join(PROM_DIR, "prometheus-sd.yml")
    with open(src, encoding="utf-8") as f:
        text = f.read()
    subs = [
        (r"\blocalhost:10290\b", exporter, None),
        (r"\blocalhost:9093\b", "127.0.0.1:9", None),
        (r"(\bscrape_interval:\s*)\S+", r"\g<1>" + interval, None),
        (r"(\bscrape_timeout:\s*)\S+", r"\g<1>" + timeout, None),
        (r"(\bmodulus:\s*)%d\b" % SHIPPED_MODULUS, r"\g<1>%d" % modulus, 1),
    ]
    for pattern, repl, want in subs:
        text, n = re.subn(pattern, repl, text)
        if not n or (want is not None and n != want):
            raise SetupError("%r found %d time(s) in %s: update harness.py with the file" % (pattern, n, src))
    os.makedirs(dst)
    with open(os.path.join(dst, "prometheus-sd.yml"), "w", encoding="utf-8") as f:
        f.write(text)
    files = rule_files(text)
    for rf in files:
        shutil.copy(os.path.join(PROM_DIR, rf), os.path.join(dst, rf))
    return files
