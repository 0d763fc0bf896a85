#!/usr/bin/env python3
"""End-to-end check of multi-target mode: the exporter's /sd and /probe with a
real Prometheus and the shipped deploy/prometheus/prometheus-sd.yml (stdlib only).

    python3 tests/e2e/probe_e2e.py --exporter target/release/avepoint-exporter

1. starts `EXPORTER demo --web.listen-address 127.0.0.1:PORT --customers 12
   --profiles-per-customer 2` (discovery enabled), waits for /-/ready and reads
   /sd itself: the customers and their organizations;
2. pass 1: runs Prometheus with a copy of prometheus-sd.yml and its rule file.
   Substituted: the exporter address, scrape_interval/scrape_timeout (2s/1500ms),
   the Alertmanager address (a closed loopback port) and the hashmod
   `modulus: 3` -> `modulus: 1`, so that shard 0 keeps every customer. The
   rest of the relabelling is used as shipped. Checks through Prometheus' API:
   - the avepoint-probe job has exactly one target per /sd customer, all
     health "up", scraping /probe?customer_id=<id> on the exporter's address;
   - avepoint_probe_success: one series per customer, and at least one
     successful probe per customer (max_over_time(...[30s]) == 1; a rare 0
     from the demo's simulated 500s/429s is reported, not failed);
   - avepoint_scan_profile_up: exactly customers x profiles series, each
     customer's profile ids those its own /probe returns;
   - avepoint_customer_info: one per customer, organization as on /sd;
   - every series of the job carries the customer_id and organization of a
     /sd customer (organization matching that customer: no series of one
     customer scraped under another's target), and none has an exported_*
     label (honor_labels);
   - the backup series (the demo runs the backup collectors and
     protected_users) come from the avepoint-probe job:
     avepoint_backup_collector_up once per customer and collector, under
     that customer;
   - the avepoint job (/metrics) is up and contributes no avepoint_scan_*,
     avepoint_customer_* or avepoint_backup_* (the drop), but keeps the
     exporter-level avepoint_collector_last_success_timestamp_seconds;
   - the alert rules loaded and evaluate without error;
3. pass 2: a fresh Prometheus with the shipped modulus 3: the job keeps
   exactly the customers whose hashmod(customer_id, 3) is 0 (computed as
   Prometheus does, relabel_e2e.hashmod) and drops the others.

Everything listens on 127.0.0.1 only, the whole run is bounded by --timeout
(120 s), and the processes it started are killed on exit, failure or
interrupt. Exit status: 0 all good, 1 a check failed, 2 setup problem.
"""
import argparse
import os
import re
import shutil
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (SHIPPED_MODULUS, Checks, http_get, log, prepare_sd, read_sd,  # noqa: E402
                     result, run_main, start_demo, wait_until)
import harness  # noqa: E402
from relabel_e2e import hashmod  # noqa: E402

JOB = "avepoint-probe"
SHARD = 0


def probe_profiles(base, customer):
    """(profile_id values of avepoint_scan_profile_up, customer_id values of
    any series) on /probe?customer_id=..., fetched directly."""
    _, body = http_get(base + "/probe?" + urllib.parse.urlencode({"customer_id": customer}), timeout=10)
    profiles = set(re.findall(r'^avepoint_scan_profile_up\{[^}]*profile_id="([^"]+)"', body, re.M))
    return profiles, set(re.findall(r'[{,]customer_id="([^"]*)"', body))


def start_prometheus(a, procs, tmp, name, exporter, modulus):
    """Prometheus on a copy of prometheus-sd.yml sharded by `modulus`;
    returns (Prom, process, rule files)."""
    cfgdir = os.path.join(tmp, name)
    rule_files = prepare_sd(cfgdir, exporter, modulus, a.scrape_interval, a.scrape_timeout)
    prom, proc = harness.start_prometheus(a.prometheus, procs, tmp, name, cfgdir, "prometheus-sd.yml")
    return prom, proc, rule_files


def probe_targets(prom):
    data = prom.api("/api/v1/targets")["data"]
    active = [t for t in data["activeTargets"] if t.get("scrapePool") == JOB]
    dropped = [t for t in data.get("droppedTargets", []) if t.get("discoveredLabels", {}).get("job") == JOB]
    return active, dropped


def pass_all(a, procs, tmp, exporter, base, customers, c):
    n, per = len(customers), a.profiles_per_customer
    log("== pass 1: modulus 3 replaced by modulus 1, so shard 0 keeps every customer (rest as shipped)")
    prom, proc, rule_files = start_prometheus(a, procs, tmp, "prometheus-all", exporter, 1)
    sel = '{job="%s"}' % JOB

    def settled():
        active, _ = probe_targets(prom)
        if len(active) != n or any(t["health"] != "up" for t in active):
            return False
        profiles = prom.scalar('count(avepoint_scan_profile_up%s)' % sel)
        succeeded = prom.scalar('count(max_over_time(avepoint_probe_success%s[30s]) == 1)' % sel)
        scrapes = prom.scalar('min(count_over_time(up%s[1m]))' % sel)
        return profiles == n * per and succeeded == n and scrapes is not None and scrapes >= a.min_scrapes
    started = time.monotonic()
    settled_ok = wait_until(procs, a.data_timeout, settled)
    log("   %s after %.0fs" % ("settled" if settled_ok else "NOT settled (checking anyway)", time.monotonic() - started))

    # Targets: one per /sd customer, all up, each probing its own customer.
    active, dropped = probe_targets(prom)
    ids = [t["labels"].get("customer_id", "") for t in active]
    c.expect(sorted(ids) == sorted(customers),
             "%s: %d targets, exactly one per /sd customer" % (JOB, len(active)),
             "%s: targets' customer_id %s, want one per /sd customer %s" % (JOB, sorted(ids), sorted(customers)))
    c.expect(not dropped, "%s: no target dropped by the relabelling" % JOB,
             "%s: %d target(s) dropped with modulus 1" % (JOB, len(dropped)))
    bad = []
    for t in active:
        cid, lbl = t["labels"].get("customer_id", ""), t["labels"]
        want_url = "http://%s/probe?customer_id=%s" % (exporter, cid)
        if t["health"] != "up":
            bad.append("%s health %s (%s)" % (cid, t["health"], t.get("lastError")))
        if t["scrapeUrl"] != want_url:
            bad.append("%s scrapeUrl %s, want %s" % (cid, t["scrapeUrl"], want_url))
        if lbl.get("instance") != exporter:
            bad.append("%s instance %r" % (cid, lbl.get("instance")))
        if lbl.get("organization") != customers.get(cid):
            bad.append("%s organization %r, /sd says %r" % (cid, lbl.get("organization"), customers.get(cid)))
    c.expect(not bad, "%s: every target health up, /probe?customer_id=<its id> on %s, organization from /sd"
             % (JOB, exporter), "%s targets: %s" % (JOB, "; ".join(bad)))
    durations = [t.get("lastScrapeDuration", 0) for t in active]
    if durations:
        log("   probe scrape durations: max %.3fs, mean %.3fs" % (max(durations), sum(durations) / len(durations)))

    # avepoint_probe_success: one per customer, every customer succeeded.
    # last_over_time over a few intervals: one failed scrape (a stale series)
    # must not make a customer disappear from an instant query.
    recent = "[%ds]" % a.recent_window
    now = {s["metric"].get("customer_id"): float(s["value"][1])
           for s in result(prom, "last_over_time(avepoint_probe_success%s%s)" % (sel, recent))}
    c.expect(sorted(now) == sorted(customers), "avepoint_probe_success: one series per customer",
             "avepoint_probe_success: customer_id values %s, want %s" % (sorted(now), sorted(customers)))
    zeros = sorted(k for k, v in now.items() if v != 1)
    if zeros:
        log("   note: avepoint_probe_success is 0 right now for %s (the demo's simulated failures)" % zeros)
    best = {s["metric"].get("customer_id"): float(s["value"][1])
            for s in result(prom, "max_over_time(avepoint_probe_success%s[30s])" % sel)}
    never = sorted(k for k in customers if best.get(k) != 1)
    c.expect(not never, "avepoint_probe_success: every customer probed successfully within 30s (%d/%d now 1)"
             % (len(now) - len(zeros), len(now)),
             "avepoint_probe_success: no successful probe in 30s for %s" % never)
    worst = prom.scalar("max(max_over_time(avepoint_probe_duration_seconds%s[1m]))" % sel)
    if worst is not None:
        log("   avepoint_probe_duration_seconds: max %.3fs over the last minute" % worst)

    # avepoint_scan_profile_up: customers x profiles, each under its own customer.
    ups = result(prom, "last_over_time(avepoint_scan_profile_up%s%s)" % (sel, recent))
    by_customer = {}
    for s in ups:
        by_customer.setdefault(s["metric"].get("customer_id"), set()).add(s["metric"].get("profile_id"))
    counts_ok = (len(ups) == n * per and sorted(by_customer) == sorted(customers)
                 and all(len(p) == per for p in by_customer.values()))
    c.expect(counts_ok, "avepoint_scan_profile_up: %d series, %d per customer" % (len(ups), per),
             "avepoint_scan_profile_up: %d series, per customer %s; want %d x %d"
             % (len(ups), {k: len(v) for k, v in by_customer.items()}, n, per))
    down = sum(1 for s in ups if s["value"][1] != "1")
    if down:
        log("   note: %d profile(s) have avepoint_scan_profile_up 0 right now (simulated failures)" % down)
    mismatched, foreign = [], []
    for cid in customers:
        for _ in range(3):  # a simulated failure may hide a profile: ask again
            direct, labelled = probe_profiles(base, cid)
            if direct == by_customer.get(cid, set()):
                break
        if direct != by_customer.get(cid, set()):
            mismatched.append("%s: Prometheus %s, /probe %s" % (cid, sorted(by_customer.get(cid, ())), sorted(direct)))
        if labelled != {cid}:
            foreign.append("/probe?customer_id=%s has customer_id values %s" % (cid, sorted(labelled)))
    c.expect(not mismatched, "avepoint_scan_profile_up: each customer's profile ids are those its own /probe returns",
             "avepoint_scan_profile_up profile ids: %s" % "; ".join(mismatched))
    c.expect(not foreign, "/probe?customer_id=X (fetched directly): every customer_id label is X",
             "; ".join(foreign))

    # avepoint_customer_info: organization as on /sd.
    infos = result(prom, "last_over_time(avepoint_customer_info%s%s)" % (sel, recent))
    got = {s["metric"].get("customer_id"): s["metric"].get("organization") for s in infos}
    c.expect(len(infos) == n and got == customers,
             "avepoint_customer_info: %d series, organization as on /sd" % len(infos),
             "avepoint_customer_info: %d series %s, want %s" % (len(infos), got, customers))

    # Every series: a /sd customer's id and its organization; no exported_* label.
    series = prom.api("/api/v1/series", **{"match[]": sel, "start": "%.0f" % (time.time() - 120)})["data"]
    exported = [s for s in series if any(k.startswith("exported_") for k in s)]
    c.expect(not exported, "no series of %s has an exported_* label (honor_labels)" % JOB,
             "%d series with exported_* labels, e.g. %s" % (len(exported), exported[0] if exported else ""))
    wrong = [s for s in series if s.get("customer_id") not in customers
             or s.get("organization") != customers[s["customer_id"]]]
    c.expect(bool(series) and not wrong,
             "all %d series of %s carry a /sd customer_id and that customer's organization" % (len(series), JOB),
             "%d of %d series without a /sd customer_id or with another organization, e.g. %s"
             % (len(wrong), len(series), wrong[0] if wrong else "(no series)"))
    anywhere = result(prom, '{exported_customer_id=~".+"} or {exported_organization=~".+"}')
    c.expect(not anywhere, "no exported_customer_id / exported_organization in any job",
             "%d series with exported_customer_id/exported_organization, e.g. %s"
             % (len(anywhere), anywhere[0]["metric"] if anywhere else ""))

    # Backup series: per customer, from its own /probe.
    backup = result(prom, "last_over_time(avepoint_backup_collector_up%s%s)" % (sel, recent))
    pairs = sorted((s["metric"].get("customer_id"), s["metric"].get("collector")) for s in backup)
    per_customer = ("backup_coverage", "backup_jobs", "protected_users")
    want_pairs = sorted((cid, col) for cid in customers for col in per_customer)
    c.expect(pairs == want_pairs,
             "avepoint_backup_collector_up: %d series in %s, one per customer and collector" % (len(pairs), JOB),
             "avepoint_backup_collector_up in %s: %d series %s, want %d (customer, collector) pairs"
             % (JOB, len(pairs), pairs[:4], len(want_pairs)))

    # The /metrics job next to it: no per-customer series, the exporter's own kept.
    up = prom.scalar('max(up{job="avepoint"})')
    leaked = result(prom, 'count by(__name__) ({job="avepoint", __name__=~"avepoint_(scan|customer|backup|subscription)_.*"})')
    names = sorted(s["metric"].get("__name__", "?") for s in leaked)
    c.expect(up == 1 and not leaked,
             "avepoint job (/metrics): up, no avepoint_scan_*/customer_*/backup_* series",
             "avepoint job (/metrics): up %s, per-customer series leaked: %s" % (up, names))
    _, exposed = http_get(base + "/metrics", timeout=10)
    collectors = sorted(set(re.findall(
        r'^avepoint_collector_last_success_timestamp_seconds\{collector="([^"]+)"\}', exposed, re.M)))
    kept = sorted(s["metric"].get("collector") for s in result(
        prom, 'last_over_time(avepoint_collector_last_success_timestamp_seconds{job="avepoint"}%s)' % recent))
    c.expect(collectors and kept == collectors,
             "avepoint job (/metrics): avepoint_collector_last_success_timestamp_seconds kept for %s" % kept,
             "avepoint_collector_last_success_timestamp_seconds: /metrics exposes %s, job avepoint has %s"
             % (collectors, kept))

    # The rule file loaded and its rules evaluate.
    groups = (prom.api("/api/v1/rules").get("data") or {}).get("groups") or []
    rules = [r for g in groups for r in g.get("rules") or []]
    broken = ["%s: %s" % (r.get("name"), r.get("lastError")) for r in rules if r.get("health") == "err"]
    for r in rules:
        q = prom.query(r.get("query", ""))
        if q.get("status") != "success":
            broken.append("%s: %s" % (r.get("name"), q.get("error")))
    c.expect(rules and not broken, "%d alert rules from %s loaded and evaluate" % (len(rules), ", ".join(rule_files)),
             "alert rules: %d loaded, problems: %s" % (len(rules), "; ".join(broken) or "none loaded"))
    procs.stop(proc)


def pass_sharded(a, procs, tmp, exporter, customers, c):
    want = sorted(k for k in customers if hashmod(k, SHIPPED_MODULUS) == SHARD)
    log("== pass 2: shipped modulus %d: shard %d must keep exactly %d of %d customers"
        % (SHIPPED_MODULUS, SHARD, len(want), len(customers)))
    if not want:
        log("   note: no demo customer hashes to shard %d; only the drops are checked" % SHARD)
    prom, proc, _ = start_prometheus(a, procs, tmp, "prometheus-shard0", exporter, SHIPPED_MODULUS)

    def settled():
        active, dropped = probe_targets(prom)
        return (len(active) == len(want) and len(active) + len(dropped) == len(customers)
                and all(t["health"] == "up" for t in active))
    wait_until(procs, a.shard_timeout, settled)
    active, dropped = probe_targets(prom)
    kept = sorted(t["labels"].get("customer_id", "") for t in active)
    c.expect(kept == want, "shard %d keeps exactly the customers with hashmod 0: %s" % (SHARD, ", ".join(kept)),
             "shard %d keeps %s, want %s" % (SHARD, kept, want))
    gone = sorted(t["discoveredLabels"].get("__address__", "") for t in dropped)
    c.expect(gone == sorted(set(customers) - set(want)),
             "shard %d drops the other %d customers" % (SHARD, len(gone)),
             "shard %d dropped %s, want %s" % (SHARD, gone, sorted(set(customers) - set(want))))
    notup = ["%s: %s %s" % (t["labels"].get("customer_id"), t["health"], t.get("lastError")) for t in active
             if t["health"] != "up"]
    c.expect(not notup, "shard %d: its %d targets are up" % (SHARD, len(active)),
             "shard %d targets not up: %s" % (SHARD, "; ".join(notup)))
    procs.stop(proc)


def run(a, procs, tmp):
    exporter = start_demo(a, procs, tmp, 0.25)
    base = "http://" + exporter
    customers = read_sd(base)
    log("exporter ready; /sd lists %d customers: %s"
        % (len(customers), ", ".join(sorted(customers.values()))))
    c = Checks()
    c.expect(len(customers) == a.customers, "/sd lists %d customers, as simulated" % len(customers),
             "/sd lists %d customers, the demo simulates %d" % (len(customers), a.customers))
    pass_all(a, procs, tmp, exporter, base, customers, c)
    pass_sharded(a, procs, tmp, exporter, customers, c)
    procs.check_alive()
    return c.failures


def main(argv=None):
    ap = argparse.ArgumentParser(description="/sd + /probe end-to-end check with a real Prometheus.")
    ap.add_argument("--exporter", required=True, help="path to the avepoint-exporter binary (its `demo` is run)")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--timeout", type=float, default=120, help="overall limit in seconds (default 120)")
    ap.add_argument("--customers", type=int, default=12, help=argparse.SUPPRESS)
    ap.add_argument("--profiles-per-customer", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--scrape-interval", default="2s", help=argparse.SUPPRESS)
    ap.add_argument("--scrape-timeout", default="1500ms", help=argparse.SUPPRESS)
    ap.add_argument("--min-scrapes", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--recent-window", type=int, default=10, help=argparse.SUPPRESS)
    ap.add_argument("--data-timeout", type=float, default=45, help=argparse.SUPPRESS)
    ap.add_argument("--shard-timeout", type=float, default=20, help=argparse.SUPPRESS)
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, configs)")
    a = ap.parse_args(argv)
    if not os.access(a.exporter, os.X_OK):
        log("SETUP ERROR: %s is not an executable" % a.exporter)
        return 2
    if not shutil.which(a.prometheus):
        log("SETUP ERROR: no prometheus binary %r (Debian package prometheus)" % a.prometheus)
        return 2

    return run_main("probe e2e", a, "avepoint-probe-e2e-", run)


if __name__ == "__main__":
    sys.exit(main())
