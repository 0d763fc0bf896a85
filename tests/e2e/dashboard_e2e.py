#!/usr/bin/env python3
"""End-to-end check of the Grafana dashboard and the alert rules in both
deployment modes (stdlib only).

    python3 tests/e2e/dashboard_e2e.py --exporter target/release/avepoint-exporter

1. starts `EXPORTER demo --web.listen-address 127.0.0.1:PORT --customers 5
   --profiles-per-customer 4` and waits for /-/ready;
2. runs tests/e2e/dashboard_lint.py against its /metrics and one /probe page
   (after the first profile details and backup collector refresh);
3. runs two Prometheus servers side by side against it: static mode, a copy
   of deploy/prometheus/prometheus.yml (target and intervals substituted),
   and probe mode, a copy of deploy/prometheus/prometheus-sd.yml (/sd +
   /probe per customer, job avepoint-probe, next to the /metrics job
   avepoint; hashmod modulus 1 so one server keeps every customer), each with
   the rule files it names, until ~20 s of samples are stored;
4. per mode, pins the evaluation time to a moment where every profile was
   fetched (the demo's simulated 429s make the exporter back off now and
   then), resolves the template variables as Grafana does (label_values,
   query_result with the text/value regex, sorted; the exporter job must be
   avepoint and the scan data job avepoint or avepoint-probe) twice: as on a
   first visit (All; the first profile, profile_id having no All) and with
   every value ticked; then runs every panel query: each must succeed and
   return series (MODE_ONLY: data in one mode, none in the other; ORACLES:
   "Failing now" lists, empty when nothing fails, must list exactly as many
   profiles as an independent count; the same for the other lists that can
   rightly be empty: never reported, daily scan off, the scan time of a
   selected profile whose daily scan is off, backup jobs and collectors
   failing), top-N tables exactly min($topn, profiles) rows (TOPN_POOL: of
   the backup modules), per-profile panels at most one series per selected
   profile (SERIES_COUNT, one per object type: an independent count);
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
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dashboard_lint  # noqa: E402
from harness import (PROM_DIR, SetupError, http_get, log, prepare_sd, read_sd,  # noqa: E402
                     rule_files, run_main, start_demo, start_prometheus, wait_for)

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
    files = rule_files(text)
    if not files:
        raise SetupError("no rule_files in %s" % src)
    for rf in files:
        if os.path.isabs(rf) or ".." in rf:
            raise SetupError("rule file path %r should be relative to prometheus.yml" % rf)
        os.makedirs(os.path.dirname(os.path.join(dst_dir, rf)) or dst_dir, exist_ok=True)
        shutil.copy(os.path.join(src_dir, rf), os.path.join(dst_dir, rf))
    return files


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


def js_regex(text):
    """A Grafana variable regex (/.../flags, JavaScript syntax) as a Python pattern."""
    m = re.fullmatch(r"/(.*)/([a-z]*)", text, re.S)
    body, flags = (m.group(1), m.group(2)) if m else (text, "")
    body = re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", body)
    return re.compile(body, re.I if "i" in flags else 0)


def query_result_lines(prom, expr):
    """What Grafana's query_result(expr) offers before the regex: one line per
    series, `name{k="v",...} value timestamp_ms`, labels in Prometheus' order."""
    r = prom.query(expr)
    if r.get("status") != "success":
        raise ValueError(r.get("error"))
    lines = []
    for s in r["data"]["result"]:
        metric = dict(s["metric"])
        text = metric.pop("__name__", "")
        text += "{" + ",".join('%s="%s"' % (k, v) for k, v in metric.items()) + "}"
        lines.append(text + " %s %d" % (s["value"][1], int(float(s["value"][0]) * 1000)))
    return lines


def variable_options(v, prom, q):
    """(text, value) options of a query variable, as Grafana computes them:
    label_values or query_result, the regex (named groups text/value),
    duplicates of a value dropped, sorted by text when sort is 1."""
    m = re.fullmatch(r"\s*label_values\((?:(.*),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
    if m:
        params = {"start": "%.0f" % (time.time() - 3600), "end": "%.0f" % time.time()}
        if m.group(1):
            params["match[]"] = m.group(1).strip()
        r = prom.api("/api/v1/label/%s/values" % m.group(2), **params)
        if r.get("status") != "success":
            raise ValueError(r.get("error"))
        raw = [(x, x) for x in r.get("data") or []]
    else:
        m = re.fullmatch(r"\s*query_result\((.*)\)\s*", q, re.S)
        if not m:
            raise ValueError("cannot evaluate query %r" % q)
        raw = [(x, x) for x in query_result_lines(prom, m.group(1))]
    if v.get("regex"):
        rx, out = js_regex(v["regex"]), []
        for text, value in raw:
            mm = rx.search(value)
            if not mm:
                continue
            g = mm.groupdict()
            if g.get("value") or g.get("text"):
                out.append((g.get("text") or g.get("value"), g.get("value") or g.get("text")))
            elif mm.groups():
                out.append((mm.group(1), mm.group(1)))
            else:
                out.append((text, value))
        raw = out
    seen, opts = set(), []
    for text, value in raw:
        if value not in seen:
            seen.add(value)
            opts.append((text, value))
    if v.get("sort") == 1:
        opts.sort(key=lambda o: o[0])
    return opts


def resolve_variables(dash, prom, mode):
    """Values for each variable, resolved in order (the chain), as Grafana
    would send them to Prometheus.

    mode "default": what a first visit shows: All for variables with All (the
      allValue, or the alternation of every value without one), the first
      option for a variable without All (profile_id), the saved value of a
      custom variable (topn);
    mode "values": every variable set explicitly to all of its values (a
      regex alternation), as a user ticking each one would.
    Returns (values for substitution, {name: [selected option values]}, problems)."""
    values, selected, problems = {}, {}, []
    for v in (dash.get("templating") or {}).get("list") or []:
        name = v.get("name")
        if v.get("type") == "datasource":
            continue
        if v.get("type") == "custom":
            cur = (v.get("current") or {}).get("value")
            values[name] = selected[name] = cur
            log("  variable %-13s custom: %s" % (name, cur))
            continue
        if v.get("type") != "query":
            problems.append("variable %s: unsupported type %s" % (name, v.get("type")))
            continue
        q = substitute(dashboard_lint.variable_query(v), values)
        try:
            opts = variable_options(v, prom, q)
        except ValueError as e:
            problems.append("variable %s: %s -> %s" % (name, q, e))
            continue
        if not opts:
            problems.append("variable %s: %s returned no values" % (name, q))
            continue
        found = [val for _, val in opts]
        if mode == "default" and not v.get("includeAll"):
            chosen = found[:1]
        else:
            chosen = found
        selected[name] = chosen
        if mode == "default" and v.get("includeAll") and v.get("allValue"):
            values[name] = v["allValue"]
        elif len(chosen) == 1 and not v.get("includeAll") and not v.get("multi"):
            values[name] = regex_escape(chosen[0])
        else:
            values[name] = "(" + "|".join(regex_escape(x) for x in chosen) + ")"
        log("  variable %-13s %2d option(s), %d selected: %s" % (
            name, len(opts), len(chosen), ", ".join("%s=%s" % (t, val) if t != val else val for t, val in opts)[:110]))
    return values, selected, problems


# Targets that have data in one mode only: (panel title, refId) -> mode. The
# other mode must return no series (so the entry cannot go stale).
MODE_ONLY = {
    ("Slowest profile fetch and probe", "B"): "probe",   # avepoint_probe_duration_seconds
}
# "Failing now" lists (and other lists that can rightly be empty) must list
# exactly as many rows as an independent count of the same profiles or
# customer modules (at most 50). Keyed by panel title, or (title, refId) for
# one target of a panel.
_S = 'job=~"$scan_job", customer_id=~"$customer_id"'
_SEL = _S + ', profile_id=~"$profile_id"'
_BS = 'avepoint_backup_job_status{%s}' % _S
ORACLES = {
    "Profiles failing to fetch": 'count(avepoint_scan_profile_up{job=~"$scan_job", customer_id=~"$customer_id"} == 0)',
    "Last scan failed or with exception": 'count(avepoint_scan_last_status{job=~"$scan_job", customer_id=~"$customer_id"} == 3'
                                          ' or avepoint_scan_last_status{job=~"$scan_job", customer_id=~"$customer_id"} == 4'
                                          ' or avepoint_scan_last_status{job=~"$scan_job", customer_id=~"$customer_id"} == 7)',
    # Profile settings: never reported is not failing, and no profile may have its daily scan off.
    "Never reported": 'count(avepoint_scan_profile_modified_timestamp_seconds{%s}'
                      ' - on(job, instance, customer_id, profile_id) avepoint_scan_last_update_timestamp_seconds{%s} == 0)'
                      % (_S, _S),
    "Daily scan off": 'count(avepoint_scan_profile_daily_scan_enabled{%s} < 1)' % _S,
    # The scan time is absent for a selected profile whose daily scan is off.
    ("Selected profile settings", "B"): 'count(avepoint_scan_profile_daily_scan_enabled{%s} > 0)' % _SEL,
    # Backup health.
    "Backup jobs failing now": 'count(%s == 3 or %s == 4 or %s == 7)' % (_BS, _BS, _BS),
    "Backup collectors failing": 'count(avepoint_backup_collector_up{%s} < 1)' % _S,
}
FAILING_LIMIT = 50
# Top-N tables over something other than the profiles: min($topn, this count)
# rows. The default pool is every profile.
TOPN_POOL = {
    "Oldest last backup success": 'count(avepoint_backup_last_success_timestamp_seconds{%s})' % _S,
    "Lowest backup coverage": 'count(avepoint_backup_scanned_objects{%s} > 0)' % _S,
    "Subscriptions by expiry": 'count(avepoint_subscription_expiry_timestamp_seconds{%s})' % _S,
    "Users without protection by tenant": 'count(avepoint_backup_users{%s, protected="false"} > 0)' % _S,
}
# Panels of the selected profiles with several series per profile (one per
# object type): exactly as many series as this independent count.
SERIES_COUNT = {
    "Container mix of the selected profiles": 'count(avepoint_scan_profile_containers{%s})' % _SEL,
}


def check_panels(dash, prom, values, selected, mode, label_mode, profiles):
    """Run every panel query; each must succeed, return data (see MODE_ONLY and
    ORACLES), and stay within its bound: top-N tables at most $topn rows,
    Failing now at most 50, per-profile panels one series per selected profile."""
    failures = 0
    topn = int(selected.get("topn") or 0)
    n_selected = len(selected.get("profile_id") or [])
    for p in dashboard_lint.iter_panels(dash.get("panels")):
        if p.get("type") == "row":
            continue
        for t in p.get("targets") or []:
            raw = t.get("expr") or ""
            expr = substitute(raw, values)
            label = "panel %-46s [%s] (%s, %s)" % ("'%s'" % p.get("title"), t.get("refId"), label_mode, mode)
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
            title = p.get("title")
            only = MODE_ONLY.get((title, t.get("refId")))
            oracle = ORACLES.get((title, t.get("refId")), ORACLES.get(title))
            problems = []
            if only and only != mode:
                if n:
                    problems.append("%d series, want none in %s mode (MODE_ONLY says %s only)" % (n, mode, only))
            elif oracle:
                want = prom.scalar(substitute(oracle, values)) or 0
                if n != min(int(want), FAILING_LIMIT):
                    problems.append("%d rows, but %d match (limit %d)" % (n, want, FAILING_LIMIT))
            elif title in SERIES_COUNT:
                want = prom.scalar(substitute(SERIES_COUNT[title], values)) or 0
                if n != int(want):
                    problems.append("%d series, but %d match" % (n, want))
            elif n == 0:
                problems.append("returned no series")
            if "$topn" in raw:
                pool = profiles
                if title in TOPN_POOL:
                    pool = int(prom.scalar(substitute(TOPN_POOL[title], values)) or 0)
                if n > topn:
                    problems.append("%d series, more than $topn = %d" % (n, topn))
                if n != min(topn, pool):
                    problems.append("%d rows, want min($topn, %d) = %d" % (n, pool, min(topn, pool)))
            if "$profile_id" in raw and title not in SERIES_COUNT and n > n_selected:
                problems.append("%d series for %d selected profile(s)" % (n, n_selected))
            if problems:
                log("FAIL %s %s\n       %s" % (label, "; ".join(problems), expr.replace("\n", " ")))
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


# The two deployment modes: which jobs the variables must find.
#   static: prometheus.yml, one job scraping /metrics with every profile;
#   probe:  prometheus-sd.yml, /sd + /probe per customer (job avepoint-probe)
#           next to a /metrics job (avepoint) without avepoint_(scan|customer|backup|subscription)_*.
MODES = {
    "static": {"exporter_job": "avepoint", "scan_job": "avepoint"},
    "probe": {"exporter_job": "avepoint", "scan_job": "avepoint-probe"},
}


def check_mode(a, procs, dash, mode, prom, target, rule_files, profiles):
    scan_job = MODES[mode]["scan_job"]
    sel = '{job="%s"}' % scan_job

    def have_data():
        up = prom.scalar('min(up{job=~"%s|%s"})' % (MODES[mode]["exporter_job"], scan_job))
        n = prom.scalar("count(avepoint_scan_profile_up%s)" % sel)
        samples = prom.scalar('min(count_over_time(up{job="%s"}[5m]))' % scan_job)
        return bool(up == 1 and n == profiles and samples is not None and samples >= a.min_samples)
    log("== %s mode: waiting for %d scrapes and %d avepoint_scan_profile_up series in job %s ..."
        % (mode, a.min_samples, profiles, scan_job))
    wait_for("%d scrapes with every profile (%s mode)" % (a.min_samples, mode), have_data, procs, a.data_timeout, 1)

    # The demo's simulated 429s make the exporter back off now and then (its
    # Retry-After is longer than the 1 s scrape timeout allows): a scrape in a
    # back-off has every profile at up 0 and no other per-profile series, which
    # the per-profile panels rightly show as empty. Evaluate everything at a
    # moment where every profile was fetched, a few seconds back: a scrape that
    # started before that moment has surely been stored by then (one finishing
    # later could still add staleness markers before it).
    def all_up():
        prom.at = time.time() - 3
        if prom.scalar("count(avepoint_scan_profile_up%s == 1)" % sel) == profiles:
            return True
        prom.at = None
        return False
    wait_for("a moment with all %d profiles up (%s mode)" % (profiles, mode), all_up, procs, 30, 0.2)
    log("%s mode: queries evaluated at %.3f" % (mode, prom.at))

    failures = 0
    for label_mode in ("default", "values"):
        log("== %s mode, variables = %s" % (mode, "as on a first visit (All; the first profile)" if label_mode == "default"
                                             else "every value selected explicitly"))
        values, selected, problems = resolve_variables(dash, prom, label_mode)
        for pr in problems:
            log("FAIL " + pr)
        failures += len(problems)
        # The variables separate the exporter's own job from the scan data job.
        for var, want in (("job", [MODES[mode]["exporter_job"]]), ("scan_job", [scan_job])):
            if selected.get(var) != want:
                log("FAIL variable %s = %s, want %s in %s mode" % (var, selected.get(var), want, mode))
                failures += 1
        if len(selected.get("customer_id") or []) != a.customers:
            log("FAIL variable customer_id: %d options, want %d" % (len(selected.get("customer_id") or []), a.customers))
            failures += 1
        want_profiles = 1 if label_mode == "default" else profiles
        if len(selected.get("profile_id") or []) != want_profiles:
            log("FAIL variable profile_id: %d selected, want %d" % (len(selected.get("profile_id") or []), want_profiles))
            failures += 1
        failures += check_panels(dash, prom, values, selected, mode, label_mode, profiles)
    log("== %s mode: alert rules (%s)" % (mode, ", ".join(rule_files)))
    failures += check_rules(prom, rule_files)
    return failures


def run(a, procs, tmp):
    dashboard = a.dashboard
    with open(dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    profiles = a.customers * a.profiles_per_customer

    # 1. exporter
    target = start_demo(a, procs, tmp)
    base = "http://" + target
    metrics_url = base + "/metrics"
    log("exporter ready at %s" % base)

    # 2. lint against the live /metrics, once the background refreshers (profile
    # details, both backup collectors) have run: until then their series, and
    # even their # HELP, are absent.
    def refreshed():
        text = http_get(metrics_url)[1]
        return all(re.search(r"^%s" % re.escape(s), text, re.M) for s in (
            "avepoint_scan_profile_daily_scan_enabled{",
            'avepoint_collector_last_success_timestamp_seconds{collector="backup_jobs"}',
            'avepoint_collector_last_success_timestamp_seconds{collector="backup_coverage"}'))
    wait_for("the profile details and backup collectors' first refresh", refreshed, procs, 60)
    probe_url = "%s/probe?customer_id=%s" % (base, sorted(read_sd(base))[0])
    log("== dashboard lint --metrics-url %s --metrics-url %s" % (metrics_url, probe_url))
    lint_rc = dashboard_lint.main([dashboard, "--metrics-url", metrics_url, "--metrics-url", probe_url])

    # 3. one Prometheus per mode, side by side, on the shipped configs
    static_dir = os.path.join(tmp, "prometheus-static")
    os.makedirs(static_dir)
    static_rules = prepare_prometheus_config(PROM_DIR, static_dir,
                                             target, a.scrape_interval, a.scrape_timeout)
    log("starting prometheus (static) with a copy of deploy/prometheus/prometheus.yml")
    static, _ = start_prometheus(a.prometheus, procs, tmp, "prometheus-static", static_dir, "prometheus.yml")
    probe_dir = os.path.join(tmp, "prometheus-probe")
    # modulus 3 -> 1: one Prometheus keeps every customer (the hashmod is probe_e2e's business).
    probe_rules = prepare_sd(probe_dir, target, 1, a.scrape_interval, a.scrape_timeout)
    log("starting prometheus (probe) with a copy of deploy/prometheus/prometheus-sd.yml (modulus 1)")
    probe, _ = start_prometheus(a.prometheus, procs, tmp, "prometheus-probe", probe_dir, "prometheus-sd.yml")

    failures = check_mode(a, procs, dash, "static", static, target, static_rules, profiles)
    failures += check_mode(a, procs, dash, "probe", probe, target, probe_rules, profiles)
    procs.check_alive()
    if lint_rc:
        failures += 1
    return failures


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dashboard and alert rules end-to-end check against a live exporter.")
    ap.add_argument("--exporter", required=True, help="path to the avepoint-exporter binary (its `demo` subcommand is run)")
    ap.add_argument("--dashboard", default=os.path.join(REPO, "dashboards", "avepoint-scan-profiles.json"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--timeout", type=float, default=180, help="overall limit in seconds (default 180)")
    ap.add_argument("--data-timeout", type=float, default=90, help=argparse.SUPPRESS)
    ap.add_argument("--min-samples", type=int, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--customers", type=int, default=5, help=argparse.SUPPRESS)
    ap.add_argument("--profiles-per-customer", type=int, default=4, help=argparse.SUPPRESS)
    ap.add_argument("--scrape-interval", default="1s", help=argparse.SUPPRESS)
    ap.add_argument("--scrape-timeout", default="1s", help=argparse.SUPPRESS)
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, config)")
    a = ap.parse_args(argv)
    if not os.access(a.exporter, os.X_OK):
        log("SETUP ERROR: %s is not an executable" % a.exporter)
        return 2

    return run_main("dashboard e2e", a, "avepoint-dashboard-e2e-", run)


if __name__ == "__main__":
    sys.exit(main())
