#!/usr/bin/env python3
"""CPU of each warm scrape, measured from outside the exporter process.

Usage: python3 benches/support/cpu_per_scrape.py BIN [PROFILES] [SCRAPES] [openmetrics]

Like ../shared/tools/scrape_cpu.py (`BIN simulate` with PROFILES profiles,
10 per customer, zero latency; the exporter on the config the simulator
prints, default settings; one cold scrape, 2 s for start-up work to
settle), then SCRAPES warm scrapes one after the other, each measured on
its own: the run time of all the exporter's threads from
/proc/PID/task/*/schedstat (nanoseconds; utime+stime ticks every 10 ms,
too coarse for one scrape). Prints min, median, mean and max CPU per
profile per scrape, and the peak RSS. Everything on 127.0.0.1.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

OPENMETRICS = "application/openmetrics-text;version=1.0.0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("nothing listens on port %d" % port)


def run_time_ns(pid):
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a blocking-pool thread that just ended
    return total


def scrape(port, accept):
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "60"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def main():
    binary = sys.argv[1]
    profiles = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    scrapes = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    accept = OPENMETRICS if "openmetrics" in sys.argv[4:] else None
    procs = []
    try:
        workdir = tempfile.mkdtemp()
        sim_port, port = free_port(), free_port()
        sim_out = os.path.join(workdir, "simulate.out")
        procs.append(subprocess.Popen(
            [binary, "simulate", "--web.listen-address", "127.0.0.1:%d" % sim_port,
             "--customers", str(max(1, profiles // 10)),
             "--profiles-per-customer", str(min(profiles, 10))],
            stdout=open(sim_out, "w"), stderr=subprocess.STDOUT))
        wait_port(sim_port)
        time.sleep(0.5)
        text = open(sim_out).read()
        secret = [l.split(":", 1)[1].strip() for l in text.splitlines()
                  if l.strip().startswith("client secret:")][0]
        config = "\n".join(l for l in text[text.index("avepoint:"):].splitlines()
                           if not l.startswith("ts="))
        config_file = os.path.join(workdir, "avepoint.yml")
        open(config_file, "w").write(config + "\n")
        exporter = subprocess.Popen(
            [binary, "--config.file", config_file, "--web.listen-address", "127.0.0.1:%d" % port],
            env=dict(os.environ, AVEPOINT_CLIENT_SECRET=secret),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(exporter)
        wait_port(port)
        up = scrape(port, accept).count(b"avepoint_scan_profile_up{")
        time.sleep(2)
        per_profile_us = []
        for _ in range(scrapes):
            before = run_time_ns(exporter.pid)
            scrape(port, accept)
            per_profile_us.append((run_time_ns(exporter.pid) - before) / profiles / 1e3)
        per_profile_us.sort()
        with open("/proc/%d/status" % exporter.pid) as f:
            peak = [int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM")][0]
        print("%s %s, %d profiles (%d up lines), %d warm scrapes: CPU per profile per scrape "
              "min %.1f median %.1f mean %.1f max %.1f us; peak RSS %.1f MiB"
              % (os.path.basename(binary), "OpenMetrics" if accept else "text", profiles, up,
                 scrapes, per_profile_us[0], per_profile_us[len(per_profile_us) // 2],
                 sum(per_profile_us) / scrapes, per_profile_us[-1], peak))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    main()
