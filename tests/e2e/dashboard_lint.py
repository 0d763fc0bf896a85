#!/usr/bin/env python3
"""Structure lint for the avepoint-exporter Grafana dashboard (stdlib only).

    python3 tests/e2e/dashboard_lint.py dashboards/avepoint-scan-profiles.json
    python3 tests/e2e/dashboard_lint.py DASHBOARD --metrics-url http://127.0.0.1:10290/metrics

Checks that the dashboard imports the same way in Grafana 10 and 11 by UI
import and by file provisioning (a `datasource` variable, no `__inputs`, a
fixed uid), that every panel is documented and has a unit, and, with
--metrics-url, that every metric name used in a query exists on a live
exporter's /metrics page. And that it stays readable at 10,000 profiles and
works in both deployment modes:

  - variables: the exporter's own job/instance (from
    avepoint_exporter_build_info) apart from the scan data job (from
    avepoint_scan_profile_up) -> customer_id -> profile_id; profile_id has no
    All (Grafana starts on the first profile), topn is a short custom list;
  - every panel query is bounded (query_level below): topk/bottomk, an
    aggregation, per-exporter metrics, or per-profile series filtered by the
    selected profiles; per-customer results only in tables; no per-profile
    result anywhere;
  - scan data (avepoint_scan_* including the profile details
    avepoint_scan_profile_*, avepoint_customer_*, avepoint_probe_*, and the
    per-customer backup series avepoint_backup_*) is filtered by $scan_job,
    never by the exporter's $job/$instance (on Kubernetes the probe job's
    instance is the Service, the /metrics job's a pod); the Exporter health
    row uses only the exporter's own metrics (avepoint_exporter_*,
    avepoint_api_*, process_*, the details refresher's
    avepoint_profile_details_* and the collectors'
    avepoint_collector_*) filtered by $job and $instance;
  - no query uses avepoint_scan_last_status_state or
    avepoint_backup_job_status_state (metrics.last_status_state may remove
    them): status comes from the raw codes avepoint_scan_last_status and
    avepoint_backup_job_status;
  - the status history is a state-timeline with the 15 documented status
    codes mapped to their names.

`--self-test` checks the query classifier against known queries.

Exit status 0 when clean, 1 on any problem (each printed on its own line).
"""
import argparse
import json
import re
import sys
import urllib.request

DS_REF = "${datasource}"
REQUIRED_VARS = ["datasource", "job", "instance", "scan_job", "customer_id", "profile_id", "topn"]
QUERY_VARS = ["job", "instance", "scan_job", "customer_id", "profile_id"]
# Each query variable must use the variables before it (the chain), and none
# of the other family: scan data never hangs off the exporter's job/instance.
CHAIN = {
    "job": [],
    "instance": ["job"],
    "scan_job": [],
    "customer_id": ["scan_job"],
    "profile_id": ["scan_job", "customer_id"],
}
EXPORTER_VARS = {"job", "instance"}
SCAN_VARS = {"scan_job", "customer_id", "profile_id"}
VAR_METRIC = {
    "job": "avepoint_exporter_build_info",
    "instance": "avepoint_exporter_build_info",
    "scan_job": "avepoint_scan_profile_up",
}
# job, instance, scan_job: no allValue, so All is the alternation of the
# values found (`.*` would make up{job=~".*"} and process_* match every job
# in the Prometheus). customer_id may use `.*`: it is always next to $scan_job.
ALL_VALUE = {"job": None, "instance": None, "scan_job": None, "customer_id": ".*"}
TOPN_MAX = 50
STATUS_NAMES = ["None", "Running", "Finished", "Failed", "Finished with exception", "Skipped",
                "Pending", "Failed to start", "Canceled", "Rejected", "Stopped", "Not scanned",
                "Disabled", "Not started", "Wait for configuration"]
SCAN_METRIC = re.compile(r"^avepoint_(scan|customer|probe|backup)_")
# The exporter's own series: one per exporter (or per exporter and collector).
EXPORTER_METRIC = re.compile(r"^(avepoint_exporter_|avepoint_api_|process_|avepoint_profile_details_|avepoint_collector_)")
# Optional state series the exporter may not export (metrics.last_status_state).
STATE_METRICS = {
    "avepoint_scan_last_status_state": "avepoint_scan_last_status",
    "avepoint_backup_job_status_state": "avepoint_backup_job_status",
}
DISCOVERY_METRIC = re.compile(r"^avepoint_discovery_")
EXPORTER_ROW = "Exporter health"

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
    # Only with collectors.scan_profiles.refresh: report_schedule (the demo
    # the end-to-end test runs scrapes every report on every scrape).
    "avepoint_scan_profile_last_read_timestamp_seconds",
    "avepoint_scan_reports_max_age_seconds",
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


# ------------------------------------------------------------ query bounds
# How many series can a panel query return? A small PromQL parser (enough for
# this dashboard's queries) rates each expression:
#   SCALAR    a scalar (number, time(), scalar(...))
#   BOUNDED   at most a fixed number of series whatever the fleet's size:
#             topk/bottomk/limitk, aggregations without per-profile or
#             per-customer labels, per-exporter metrics, or a selector of a
#             per-profile metric filtered by the selected profiles
#             (profile_id=~"$profile_id", a variable without All)
#   CUSTOMER  one series per customer (hundreds at 10,000 profiles)
#   PROFILE   one series per profile: 10,000 lines, unreadable
SCALAR, BOUNDED, CUSTOMER, PROFILE = 0, 1, 2, 3
LEVEL_NAMES = {SCALAR: "scalar", BOUNDED: "bounded", CUSTOMER: "per customer", PROFILE: "per profile"}
SELECTED_PROFILE = re.compile(r'\bprofile_id\s*=~?\s*"\$profile_id"')
TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<braces>\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})
  | (?P<dur>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![\w:]))
  | (?P<num>(?:\d+\.?\d*(?:e[+-]?\d+)?|0x[0-9a-f]+|inf|nan)(?![\w:]))
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>(),])
  | (?P<ident>\$?\{?[a-zA-Z_:][\w:]*\}?)
''', re.X | re.I)
BINARY = [("or",), ("and", "unless"), ("==", "!=", ">=", "<=", ">", "<"), ("+", "-"), ("*", "/", "%", "atan2"), ("^",)]
AGG_OPS = AGGREGATIONS
SCALAR_FUNCS = {"time", "scalar", "pi"}


class PromQLError(ValueError):
    pass


def tokenize(expr):
    out, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise PromQLError("cannot read %r" % expr[pos:pos + 20])
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def metric_level(name, matchers):
    if name.startswith("avepoint_scan_"):
        # Includes the profile details (avepoint_scan_profile_*): per profile.
        return BOUNDED if SELECTED_PROFILE.search(matchers or "") else PROFILE
    if name.startswith(("avepoint_customer_", "avepoint_probe_", "avepoint_backup_")) or name == "up":
        # up: one target per customer in probe mode. avepoint_backup_*: per
        # customer (and job type / module, service module, collector: a few
        # series per customer, still one table row each).
        return CUSTOMER
    return BOUNDED


def grouping_level(labels, inner):
    if "profile_id" in labels:
        return inner
    if "customer_id" in labels:
        return min(inner, CUSTOMER)
    return BOUNDED


class Parser:
    def __init__(self, expr):
        self.toks = tokenize(expr)
        self.i = 0

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def take(self, want=None):
        tok = self.peek()
        if tok[0] is None or (want is not None and tok[1].lower() != want):
            raise PromQLError("expected %r, got %r" % (want, tok[1]))
        self.i += 1
        return tok

    def labels(self):
        self.take("(")
        names = []
        while self.peek()[1] != ")":
            names.append(self.take()[1])
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return names

    def parse(self):
        level = self.binary(0)
        if self.peek()[0] is not None:
            raise PromQLError("unexpected %r" % self.peek()[1])
        return level

    def binary(self, prec):
        if prec == len(BINARY):
            return self.unary()
        left = self.binary(prec + 1)
        while self.peek()[1] is not None and self.peek()[1].lower() in BINARY[prec]:
            op = self.take()[1].lower()
            on, group = None, None
            if self.peek()[1] and self.peek()[1].lower() == "bool":
                self.take()
            if self.peek()[1] and self.peek()[1].lower() in ("on", "ignoring"):
                on = (self.take()[1].lower(), self.labels())
            if self.peek()[1] and self.peek()[1].lower() in ("group_left", "group_right"):
                group = self.take()[1].lower()
                if self.peek()[1] == "(":
                    self.labels()
            right = self.binary(prec + 1) if op != "^" else self.binary(prec)
            left = self.combine(op, left, right, on, group)
        return left

    @staticmethod
    def combine(op, left, right, on, group):
        if left == SCALAR:
            return right
        if right == SCALAR:
            return left
        if op == "or":
            return max(left, right)
        if op == "unless":
            return left
        if group == "group_left":
            return left
        if group == "group_right":
            return right
        if op == "and":
            # A subset of the left side; at most one per right series only
            # when the match includes what tells profiles apart.
            if on is None or (on[0] == "on" and "profile_id" in on[1]):
                return min(left, right)
            return left
        # one-to-one: every result series has its own partner on each side.
        return min(left, right)

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            self.take()
        return self.postfix(self.primary())

    def postfix(self, level):
        while True:
            kind, text = self.peek()
            if kind == "range":
                self.take()
            elif text and text.lower() == "offset":
                self.take()
                if self.peek()[1] == "-":
                    self.take()
                self.take()
            else:
                return level

    def primary(self):
        kind, text = self.peek()
        if kind == "num" or (kind == "ident" and text.startswith("$")):
            self.take()
            return SCALAR
        if kind == "str":
            self.take()
            return SCALAR
        if text == "(":
            self.take("(")
            level = self.binary(0)
            self.take(")")
            return level
        if kind == "braces":
            self.take()
            raise PromQLError("selector without a metric name: %s" % text)
        if kind != "ident":
            raise PromQLError("unexpected %r" % text)
        name = self.take()[1]
        low = name.lower()
        if low in AGG_OPS:
            grouping = None
            if self.peek()[1] and self.peek()[1].lower() in ("by", "without"):
                grouping = (self.take()[1].lower(), self.labels())
            args = self.args()
            if self.peek()[1] and self.peek()[1].lower() in ("by", "without"):
                grouping = (self.take()[1].lower(), self.labels())
            inner = max(args[-1], BOUNDED)
            if grouping is None:
                return BOUNDED
            if grouping[0] == "without":
                return inner
            return max(BOUNDED, grouping_level(grouping[1], inner))
        if self.peek()[1] == "(":
            args = self.args()
            if low in SCALAR_FUNCS:
                return SCALAR
            if low == "vector":
                return BOUNDED
            vectors = [a for a in args if a != SCALAR]
            return max(vectors) if vectors else SCALAR
        matchers = None
        if self.peek()[0] == "braces":
            matchers = self.take()[1]
        return metric_level(name, matchers)

    def args(self):
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.binary(0))
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out


def query_level(expr):
    """The cardinality class of a PromQL expression (see above)."""
    return Parser(expr).parse()


def selectors(expr):
    """(metric name, matchers text) of every selector in a PromQL expression."""
    toks = tokenize(expr)
    out, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        low = (text or "").lower()
        if low in ("by", "without", "on", "ignoring", "group_left", "group_right") \
                and i + 1 < len(toks) and toks[i + 1][1] == "(":
            while i < len(toks) and toks[i][1] != ")":   # a label list
                i += 1
        elif kind == "ident" and not text.startswith("$") and low not in PROMQL_KEYWORDS \
                and text not in AGGREGATIONS and not (i + 1 < len(toks) and toks[i + 1][1] == "("):
            nxt = toks[i + 1] if i + 1 < len(toks) else (None, "")
            out.append((text, nxt[1] if nxt[0] == "braces" else ""))
        i += 1
    return out


def variables_used(expr):
    return set(re.findall(r"\$\{?(\w+)", expr))


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
    for name in QUERY_VARS:
        v = variables.get(name)
        if not v:
            continue
        where = "variable %s" % name
        if v.get("type") != "query":
            err("%s: type must be query" % where)
        if (v.get("datasource") or {}).get("uid") != DS_REF:
            err("%s: datasource uid must be %s" % (where, DS_REF))
        if v.get("refresh") != 2:
            err("%s: refresh must be 2 (on time range change), so new customers and profiles appear" % where)
        q = variable_query(v)
        if name == "profile_id":
            # No All: per-profile time series of the whole fleet are unreadable.
            if not v.get("multi") or v.get("includeAll"):
                err("%s: must be multi-select without All (Grafana then starts on the first profile)" % where)
            if (v.get("current") or {}).get("value") not in (None, [], ""):
                err("%s: must not save a current value (a profile id of someone else's fleet)" % where)
        elif not (v.get("multi") and v.get("includeAll")):
            err("%s: must be multi-select with All" % where)
        if name in ALL_VALUE and v.get("allValue") != ALL_VALUE[name]:
            err("%s: allValue must be %r, got %r" % (where, ALL_VALUE[name], v.get("allValue")))
        if name in ("customer_id", "profile_id"):
            # query_result(...) with a regex whose named group `value` is the id.
            if not q.startswith("query_result("):
                err("%s: query must be query_result(...) (value: the id, text: a name)" % where)
            if '%s="(?<value>' % name not in (v.get("regex") or ""):
                err("%s: regex must capture the %s label as (?<value>...)" % (where, name))
        else:
            lv = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q)
            want_label = "job" if name == "scan_job" else name
            if not lv or lv.group(2) != want_label:
                err("%s: query must be label_values(..., %s), got %r" % (where, want_label, q))
            if name in VAR_METRIC and label_values_metric(q) != VAR_METRIC[name]:
                err("%s: must come from %s" % (where, VAR_METRIC[name]))
        for dep in CHAIN.get(name, []):
            if not re.search(r'\b%s=~"\$%s"' % ("job" if dep == "scan_job" else dep, dep), q):
                err("%s: not chained: query lacks %s=~\"$%s\"" % (where, "job" if dep == "scan_job" else dep, dep))
        family = EXPORTER_VARS if name in EXPORTER_VARS else SCAN_VARS
        foreign = variables_used(q) - family
        if foreign:
            err("%s: uses %s: the exporter's job/instance and the scan data chain are separate"
                % (where, ", ".join(sorted("$" + f for f in foreign))))
    topn = variables.get("topn")
    if topn:
        opts = [o.strip() for o in str(topn.get("query", "")).split(",")]
        if topn.get("type") != "custom" or topn.get("multi") or topn.get("includeAll") \
                or not all(o.isdigit() and 0 < int(o) <= TOPN_MAX for o in opts):
            err("variable topn: must be a single-value custom list of numbers up to %d, got %r"
                % (TOPN_MAX, topn.get("query")))

    # ---------------------------------------------------------------- panels
    seen_ids = {}
    exprs = []
    panels = list(iter_panels(dash.get("panels")))
    row_of, current = {}, ""
    for p in dash.get("panels") or []:   # rows in order; collapsed rows keep theirs
        if p.get("type") == "row":
            current = p.get("title") or ""
            for sub in p.get("panels") or []:
                row_of[id(sub)] = current
        else:
            row_of[id(p)] = current
    timelines = []
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
            for e in query_rules(p, row_of.get(id(p), ""), expr):
                err("%s: %s" % (tw, e))
        if p.get("type") == "state-timeline":
            timelines.append(p)
    check_status_history(timelines, err)
    for name, v in variables.items():
        q = variable_query(v) if v.get("type") == "query" else ""
        if q:
            exprs.append(("variable %s" % name, q))
    return errors, exprs


def query_rules(panel, row, expr):
    """What a panel query must respect to work at fleet size and in both modes."""
    problems = []
    try:
        level = query_level(expr)
        sels = selectors(expr)
    except PromQLError as e:
        return ["cannot analyse the query (%s); keep it to the PromQL the lint understands" % e]
    kind = panel.get("type")
    if level == PROFILE:
        problems.append("returns one series per profile (10,000 at fleet size): bound it with "
                        "topk/bottomk($topn, ...), aggregate it, or filter by profile_id=~\"$profile_id\"")
    elif level == CUSTOMER and kind != "table":
        problems.append("returns one series per customer: only tables may (a line or a stat per "
                        "customer is unreadable at fleet size)")
    for name, matchers in sels:
        used = variables_used(matchers)
        if name in STATE_METRICS:
            problems.append("uses %s, which metrics.last_status_state can remove: use the raw code %s"
                            % (name, STATE_METRICS[name]))
        if SCAN_METRIC.match(name):
            if not re.search(r'\bjob=~"\$scan_job"', matchers):
                problems.append("%s: scan data must be filtered by job=~\"$scan_job\"" % name)
            if used & EXPORTER_VARS:
                problems.append("%s: scan data must not be filtered by the exporter's $job/$instance "
                                "(its instance differs from the probe job's on Kubernetes)" % name)
        if EXPORTER_METRIC.match(name) or DISCOVERY_METRIC.match(name):
            if not (re.search(r'\bjob=~"\$job"', matchers) and re.search(r'\binstance=~"\$instance"', matchers)):
                problems.append("%s: the exporter's own metrics are filtered by job=~\"$job\" and "
                                "instance=~\"$instance\"" % name)
            if used & SCAN_VARS:
                problems.append("%s: the exporter's own metrics must not be filtered by the scan data "
                                "variables (in probe mode its job is not the scan data job)" % name)
        if row == EXPORTER_ROW and not EXPORTER_METRIC.match(name):
            problems.append("%s: the %s row shows only the exporter's own metrics "
                            "(avepoint_exporter_*, avepoint_api_*, process_*, avepoint_profile_details_*, "
                            "avepoint_collector_*)" % (name, EXPORTER_ROW))
    return problems


def check_status_history(timelines, err):
    """The status history: a state-timeline of the raw code with all 15 names."""
    history = [p for p in timelines if "avepoint_scan_last_status{" in
               " ".join(t.get("expr") or "" for t in p.get("targets") or [])]
    if len(history) != 1:
        err("want one state-timeline panel of avepoint_scan_last_status (the status history), found %d"
            % len(history))
        return
    p = history[0]
    got = {}
    for m in ((p.get("fieldConfig") or {}).get("defaults") or {}).get("mappings") or []:
        if m.get("type") == "value":
            got.update({k: (v or {}).get("text") for k, v in (m.get("options") or {}).items()})
    want = {str(code): name for code, name in enumerate(STATUS_NAMES)}
    for code, name in want.items():
        if got.get(code) != name:
            err("panel %r: status code %s must map to %r, got %r" % (p.get("title"), code, name, got.get(code)))
    for t in p.get("targets") or []:
        if t.get("instant") or not t.get("range", True):
            err("panel %r: the status history needs a range query" % p.get("title"))


SELF_TEST = [
    # (query, level it must get)
    ('avepoint_scan_new_registered_content{job=~"$scan_job"}', PROFILE),
    ('avepoint_scan_new_registered_content{job=~"$scan_job", profile_id=~"$profile_id"}', BOUNDED),
    ('topk($topn, avepoint_scan_new_registered_content{job=~"$scan_job"})', BOUNDED),
    ('topk($topn, avepoint_scan_new_registered_content{job=~"$scan_job"}) * on(job, instance, customer_id, '
     'profile_id) group_left(profile_name) avepoint_scan_profile_info{job=~"$scan_job"}', BOUNDED),
    ('avepoint_scan_profile_info{job=~"$scan_job"} * on(job, instance, customer_id, profile_id) group_right() '
     'topk(5, avepoint_scan_profile_up)', BOUNDED),
    ('avepoint_scan_profile_info{job=~"$scan_job"} * on(job, instance, customer_id, profile_id) group_left() '
     'topk(5, avepoint_scan_profile_up)', PROFILE),
    ('count(avepoint_scan_profile_up == 0) or vector(0)', BOUNDED),
    ('count by(job) (avepoint_scan_last_status == 3 or avepoint_scan_last_status == 7)', BOUNDED),
    ('count by(job, customer_id) (avepoint_scan_profile_up)', CUSTOMER),
    ('max by(job, instance, customer_id, profile_id) (avepoint_scan_last_status)', PROFILE),
    ('sum without(tenant_id) (avepoint_scan_last_status)', PROFILE),
    ('time() - avepoint_scan_last_update_timestamp_seconds', PROFILE),
    ('(time() - avepoint_scan_last_update_timestamp_seconds) > 26 * 3600', PROFILE),
    ('topk by(job, instance, customer_id, profile_id) (1, last_over_time(avepoint_scan_profile_info[1d]))', PROFILE),
    ('bottomk(50, avepoint_scan_profile_up == 0 or on(job, instance, customer_id, profile_id) '
     'avepoint_scan_profile_up == 0)', BOUNDED),
    ('avepoint_scan_profile_up and on(job) avepoint_exporter_build_info', PROFILE),
    ('avepoint_scan_profile_up and topk(3, avepoint_scan_last_status)', BOUNDED),
    ('avepoint_scan_profile_up / avepoint_scan_last_status', PROFILE),
    ('avepoint_customer_job_status * on(job, instance, customer_id) group_left(organization) avepoint_customer_info',
     CUSTOMER),
    ('histogram_quantile(0.9, sum by(le, api_endpoint) (rate(avepoint_api_request_duration_seconds_bucket'
     '{job=~"$job"}[$__rate_interval])))', BOUNDED),
    ('rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])', BOUNDED),
    ('max by(job) (avepoint_probe_duration_seconds{job=~"$scan_job"})', BOUNDED),
    ('count(up{job=~"$job"} == 0 or up{job=~"$scan_job"} == 0) or vector(0)', BOUNDED),
    ('up{job=~"$scan_job"} == 0', CUSTOMER),
    ('avepoint_scan_last_update_timestamp_seconds{job=~"$scan_job"} * 1000 offset 1h', PROFILE),
    ('-avepoint_scan_profile_up', PROFILE),
    ('vector(1) + avepoint_scan_profile_up', BOUNDED),
    # profile details: per profile
    ('avepoint_scan_profile_daily_scan_enabled{job=~"$scan_job"} == 0', PROFILE),
    ('avepoint_scan_profile_containers{job=~"$scan_job", profile_id=~"$profile_id"}', BOUNDED),
    ('count(avepoint_scan_last_update_timestamp_seconds == on(job, instance, customer_id, profile_id) '
     'avepoint_scan_profile_modified_timestamp_seconds) or vector(0)', BOUNDED),
    ('sum by(object_type) (avepoint_scan_profile_containers)', BOUNDED),
    ('sum by(customer_id, object_type) (avepoint_scan_profile_containers)', CUSTOMER),
    # backup: per customer
    ('avepoint_backup_job_status{job=~"$scan_job"}', CUSTOMER),
    ('label_join(avepoint_backup_job_status, "module", " / ", "job_type", "job_module")', CUSTOMER),
    ('count by(collector) (avepoint_backup_collector_up == 0)', BOUNDED),
    ('topk(5, time() - avepoint_backup_last_success_timestamp_seconds)', BOUNDED),
    ('avepoint_backup_protected_objects / (avepoint_backup_scanned_objects > 0)', CUSTOMER),
    ('time() - avepoint_collector_last_success_timestamp_seconds{job=~"$job"}', BOUNDED),
    ('avepoint_profile_details_profiles', BOUNDED),
]


def self_test_misses(rules, wants):
    """Self-test failures: one per text of `wants` that no problem in
    `rules` mentions, each printed."""
    bad = 0
    for want in wants:
        if not any(want in r for r in rules):
            bad += 1
            print("FAIL self-test: query_rules misses %r: %s" % (want, rules))
    return bad


def self_test():
    bad = 0
    for q, want in SELF_TEST:
        got = query_level(q)
        if got != want:
            bad += 1
            print("FAIL self-test: %s -> %s, want %s" % (q, LEVEL_NAMES[got], LEVEL_NAMES[want]))
    bad += self_test_misses(
        query_rules({"type": "timeseries"}, "", 'avepoint_scan_last_status_state{job=~"$job", state="failed"}'),
        ("avepoint_scan_last_status_state", "filtered by job=~\"$scan_job\"", "$job/$instance", "per profile"))
    rules = query_rules({"type": "timeseries"}, EXPORTER_ROW, 'process_resident_memory_bytes{job=~"$scan_job"}')
    if len(rules) != 2:
        bad += 1
        print("FAIL self-test: process_* filtered by $scan_job: want 2 problems, got %s" % rules)
    if query_rules({"type": "table"}, "", 'avepoint_customer_tenants{job=~"$scan_job"}'):
        bad += 1
        print("FAIL self-test: a per-customer table is fine")
    bad += self_test_misses(
        query_rules({"type": "stat"}, "", 'avepoint_backup_job_status_state{job=~"$job", state="failed"}'),
        ("avepoint_backup_job_status_state", "filtered by job=~\"$scan_job\"", "$job/$instance", "per customer"))
    rules = query_rules({"type": "stat"}, EXPORTER_ROW,
                        'time() - avepoint_profile_details_last_success_timestamp_seconds{job=~"$job", instance=~"$instance"}')
    if rules:
        bad += 1
        print("FAIL self-test: the details refresher belongs in the %s row: %s" % (EXPORTER_ROW, rules))
    rules = query_rules({"type": "stat"}, EXPORTER_ROW, 'avepoint_collector_last_success_timestamp_seconds{job=~"$scan_job"}')
    if len(rules) != 2:
        bad += 1
        print("FAIL self-test: avepoint_collector_* filtered by $scan_job: want 2 problems, got %s" % rules)
    print("dashboard lint self-test: %s (%d cases)" % ("OK" if not bad else "FAILED", len(SELF_TEST) + 6))
    return 1 if bad else 0


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
            used = {m} if m else metric_names(expr)   # query_result(...)
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
    ap.add_argument("dashboard", nargs="?")
    ap.add_argument("--metrics-url", action="append",
                    help="an exporter page (/metrics, /probe?customer_id=...): every metric name used must "
                         "exist on one of them; repeatable")
    ap.add_argument("--self-test", action="store_true", help="check the query classifier, then the dashboard if given")
    a = ap.parse_args(argv)
    if a.self_test:
        rc = self_test()
        if rc or not a.dashboard:
            return rc
    if not a.dashboard:
        ap.error("the dashboard file is required")
    try:
        with open(a.dashboard, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print("FAIL %s: %s" % (a.dashboard, e))
        return 1
    errors, exprs = lint(dash)
    if a.metrics_url:
        exposed = set()
        try:
            for url in a.metrics_url:
                exposed |= exposed_metric_names(url)
        except OSError as e:
            errors.append("cannot fetch %s: %s" % (url, e))
        else:
            used = set()
            errors += check_metrics(exprs, exposed)
            for w, e in exprs:
                used |= metric_names(e) if not (w.startswith("variable") and label_values_metric(e)) \
                    else {label_values_metric(e)}
            print("dashboard uses %d metric names; %d names exposed at %s"
                  % (len({u for u in used if u}), len(exposed), " and ".join(a.metrics_url)))
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
