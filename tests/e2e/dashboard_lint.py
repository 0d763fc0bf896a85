#!/usr/bin/env python3
"""Structure lint for the avepoint-exporter Grafana dashboard (stdlib only).

    python3 tests/e2e/dashboard_lint.py dashboards/avepoint-scan-profiles.json
    python3 tests/e2e/dashboard_lint.py DASHBOARD --metrics-url http://127.0.0.1:10290/metrics

Checks that the dashboard imports the same way in Grafana 10 and 11 by UI
import and by file provisioning (a `datasource` variable, no `__inputs`, a
fixed uid), that every panel is documented and has a unit, that the template
variables are chained job -> instance -> customer_id -> profile_name, and,
with --metrics-url, that every metric name used in a query exists on a live
exporter's /metrics page.

Exit status 0 when clean, 1 on any problem (each printed on its own line).
"""
import argparse
import json
import re
import sys
import urllib.request

DS_REF = "${datasource}"
REQUIRED_VARS = ["datasource", "job", "instance", "customer_id", "profile_name"]
# Each query variable must use the variables before it (the chain).
CHAIN = {
    "instance": ["job"],
    "customer_id": ["job", "instance"],
    "profile_name": ["job", "instance", "customer_id"],
}
VAR_METRIC = {"profile_name": "avepoint_scan_profile_info"}

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end",
}
# Aggregation operators may be followed by `by (...)` before their `(`.
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
# Series Prometheus itself creates (not on the exporter's /metrics page).
PROMETHEUS_GENERATED = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS",
    "ALERTS_FOR_STATE",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labelled counters the exporter only exposes (not even # HELP) once a first
# labelled sample exists: no retry or back-off may have happened yet when the
# live page is read. Their panels use `or vector(0)`; the names are listed here
# exactly, so a typo in any other name still fails.
ABSENT_UNTIL_FIRST_SAMPLE = {
    "avepoint_api_retries_total",
    "avepoint_api_backoff_skipped_requests_total",
}


def iter_panels(panels):
    for p in panels or []:
        yield p
        # Collapsed rows keep their panels inside.
        for sub in iter_panels(p.get("panels")):
            yield sub


def metric_names(expr):
    """Metric names referenced by a PromQL expression (best effort, no parser)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)          # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)         # range / subquery selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)", s):
        name = m.group(1)
        rest = s[m.end():].lstrip()
        if rest.startswith("("):              # function or aggregation
            continue
        if name.lower() in PROMQL_KEYWORDS or name in AGGREGATIONS:
            continue
        names.add(name)
    return names


def label_values_metric(query):
    m = re.match(r"\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", query or "")
    return m.group(1) if m else None


def variable_query(v):
    q = v.get("query")
    if isinstance(q, dict):
        q = q.get("query", "")
    return q or ""


def lint(dash):
    errors = []
    err = errors.append

    if "__inputs" in dash:
        err("dashboard has __inputs: it must use the ${datasource} variable, not ${DS_...} inputs")
    if "${DS_" in json.dumps(dash):
        err("dashboard references a ${DS_...} input")
    uid = dash.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
        err("uid must be a fixed string of at most 40 characters [A-Za-z0-9_-], got %r" % (uid,))
    if dash.get("id") not in (None,):
        err("dashboard id must be null/absent for import and provisioning, got %r" % dash.get("id"))
    if not dash.get("title"):
        err("dashboard has no title")
    sv = dash.get("schemaVersion")
    if not isinstance(sv, int) or not 36 <= sv <= 41:
        err("schemaVersion should be between 36 and 41 (Grafana 10/11), got %r" % (sv,))
    if not dash.get("tags"):
        err("dashboard has no tags")
    if not any("avepoint-exporter" in (l.get("url") or "") for l in dash.get("links") or []):
        err("dashboard has no link to the project")

    # ---------------------------------------------------------------- variables
    variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list") or []}
    for name in REQUIRED_VARS:
        if name not in variables:
            err("template variable %r missing" % name)
    ds = variables.get("datasource")
    if ds and not (ds.get("type") == "datasource" and ds.get("query") == "prometheus"):
        err("variable datasource must be type datasource with query prometheus")
    for name in REQUIRED_VARS[1:]:
        v = variables.get(name)
        if not v:
            continue
        where = "variable %s" % name
        if v.get("type") != "query":
            err("%s: type must be query" % where)
        if (v.get("datasource") or {}).get("uid") != DS_REF:
            err("%s: datasource uid must be %s" % (where, DS_REF))
        if not (v.get("multi") and v.get("includeAll")):
            err("%s: must be multi-select with All" % where)
        if v.get("allValue") not in (".*", ".+"):
            err("%s: allValue must be .* or .+ (regex matchers), got %r" % (where, v.get("allValue")))
        q = variable_query(v)
        lv = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
        if not lv or lv.group(2) != name:
            err("%s: query must be label_values(..., %s), got %r" % (where, name, q))
        if name in VAR_METRIC and label_values_metric(q) != VAR_METRIC[name]:
            err("%s: must come from %s" % (where, VAR_METRIC[name]))
        for dep in CHAIN.get(name, []):
            if not re.search(r'\b%s=~"\$%s"' % (dep, dep), q):
                err("%s: not chained: query lacks %s=~\"$%s\"" % (where, dep, dep))

    # ---------------------------------------------------------------- panels
    seen_ids = {}
    exprs = []
    panels = list(iter_panels(dash.get("panels")))
    if not panels:
        err("dashboard has no panels")
    for p in panels:
        pid = p.get("id")
        where = "panel %r (%s)" % (p.get("title"), pid)
        if not isinstance(pid, int):
            err("%s: id must be an integer" % where)
        elif pid in seen_ids:
            err("%s: duplicate id (also %r)" % (where, seen_ids[pid]))
        else:
            seen_ids[pid] = p.get("title")
        if not (p.get("title") or "").strip():
            err("%s: no title" % where)
        if not (p.get("description") or "").strip():
            err("%s: no description" % where)
        if (p.get("datasource") or {}).get("uid") != DS_REF:
            err("%s: datasource uid must be %s" % (where, DS_REF))
        gp = p.get("gridPos") or {}
        if not all(isinstance(gp.get(k), int) for k in ("h", "w", "x", "y")):
            err("%s: gridPos h/w/x/y missing" % where)
        if p.get("type") == "row":
            continue
        if not ((p.get("fieldConfig") or {}).get("defaults") or {}).get("unit"):
            err("%s: fieldConfig.defaults.unit not set" % where)
        targets = p.get("targets") or []
        if not targets:
            err("%s: no targets" % where)
        refids = set()
        for t in targets:
            tw = "%s target %s" % (where, t.get("refId"))
            if t.get("refId") in refids:
                err("%s: duplicate refId" % tw)
            refids.add(t.get("refId"))
            if (t.get("datasource") or {}).get("uid") not in (None, DS_REF):
                err("%s: datasource uid must be %s" % (tw, DS_REF))
            expr = t.get("expr") or ""
            if not expr.strip():
                err("%s: empty expr" % tw)
                continue
            for fn, rng in re.findall(r"\b(rate|irate|increase)\s*\([^\[]*\[([^\]]*)\]", expr):
                if rng.strip() != "$__rate_interval":
                    err("%s: %s() must use [$__rate_interval], not [%s]" % (tw, fn, rng))
            exprs.append((tw, expr))
    for name, v in variables.items():
        q = variable_query(v) if v.get("type") == "query" else ""
        if q:
            exprs.append(("variable %s" % name, q))
    return errors, exprs


def exposed_metric_names(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode("utf-8", "replace")
    names = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                names.add(parts[2])
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m:
            names.add(m.group(1))
    return names


def check_metrics(exprs, exposed):
    errors = []
    for where, expr in exprs:
        if where.startswith("variable"):
            m = label_values_metric(expr)
            used = {m} if m else set()
        else:
            used = metric_names(expr)
        for name in sorted(used):
            if name in PROMETHEUS_GENERATED or name in exposed or name in ABSENT_UNTIL_FIRST_SAMPLE:
                continue
            base = name
            for suf in HISTOGRAM_SUFFIXES:
                if name.endswith(suf):
                    base = name[: -len(suf)]
            if base in exposed:
                continue
            errors.append("%s: metric %s is not exposed by the exporter" % (where, name))
    return errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dashboard")
    ap.add_argument("--metrics-url", help="exporter /metrics URL: check metric names used exist")
    a = ap.parse_args(argv)
    try:
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print("FAIL %s: %s" % (a.dashboard, e))
        return 1
    errors, exprs = lint(dash)
    if a.metrics_url:
        try:
            exposed = exposed_metric_names(a.metrics_url)
        except OSError as e:
            errors.append("cannot fetch %s: %s" % (a.metrics_url, e))
        else:
            used = set()
            errors += check_metrics(exprs, exposed)
            for w, e in exprs:
                used |= metric_names(e) if not w.startswith("variable") else {label_values_metric(e)}
            print("dashboard uses %d metric names; %d names exposed at %s"
                  % (len({u for u in used if u}), len(exposed), a.metrics_url))
    for e in errors:
        print("FAIL " + e)
    panels = [p for p in iter_panels(dash.get("panels")) if p.get("type") != "row"]
    if errors:
        print("dashboard lint: %d problem(s) in %s" % (len(errors), a.dashboard))
        return 1
    print("dashboard lint: OK (%d panels, %d queries) %s" % (len(panels), len(exprs), a.dashboard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
