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


def scrape(port, accept, timeout=120):
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout // 2)}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def start_simulator(binary, profiles, workdir):
    """`binary simulate` with `profiles` profiles (10 per customer, zero
    latency); returns its process, the exporter config file it printed
    (default settings) and the client secret."""
    sim_port = free_port()
    sim_out = os.path.join(workdir, "simulate.out")
    simulator = subprocess.Popen(
        [binary, "simulate", "--web.listen-address", "127.0.0.1:%d" % sim_port,
         "--customers", str(max(1, profiles // 10)),
         "--profiles-per-customer", str(min(profiles, 10))],
        stdout=open(sim_out, "w"), stderr=subprocess.STDOUT)
    wait_port(sim_port)
    time.sleep(0.5)
    text = open(sim_out).read()
    secret = [l.split(":", 1)[1].strip() for l in text.splitlines()
              if l.strip().startswith("client secret:")][0]
    config = "\n".join(l for l in text[text.index("avepoint:"):].splitlines()
                       if not l.startswith("ts="))
    config_file = os.path.join(workdir, "avepoint.yml")
    open(config_file, "w").write(config + "\n")
    return simulator, config_file, secret


class Run:
    """The command line (BIN [PROFILES] [SCRAPES] [openmetrics]), the
    simulator's config and secret, and the processes to stop at the end."""

    def __init__(self, default_scrapes):
        self.binary = sys.argv[1]
        self.profiles = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
        self.scrapes = int(sys.argv[3]) if len(sys.argv) > 3 else default_scrapes
        self.accept = OPENMETRICS if "openmetrics" in sys.argv[4:] else None
        self.format = "OpenMetrics" if self.accept else "text"
        self.workdir = tempfile.mkdtemp()
        self.procs = []
        self.config_file = self.secret = None

    def measure(self, exporter_figure):
        """Start the simulator, call `exporter_figure(self)` and print what
        it returns after the run's description; stop every process."""
        try:
            simulator, self.config_file, self.secret = start_simulator(
                self.binary, self.profiles, self.workdir)
            self.procs.append(simulator)
            figure = exporter_figure(self)
            print("%s %s, %d profiles, %d warm scrapes: %s"
                  % (os.path.basename(self.binary), self.format, self.profiles, self.scrapes, figure))
        finally:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()


def cpu_samples(binary, config_file, secret, profiles, scrapes, accept, procs=None):
    """Start `binary` on `config_file`, scrape it once cold, let it settle
    2 s, then measure `scrapes` warm scrapes one by one: the `up` lines of
    the cold scrape, each warm scrape's CPU per profile (us) and the peak
    RSS (MiB). The exporter is stopped at the end (or added to `procs`)."""
    port = free_port()
    exporter = subprocess.Popen(
        [binary, "--config.file", config_file, "--web.listen-address", "127.0.0.1:%d" % port],
        env=dict(os.environ, AVEPOINT_CLIENT_SECRET=secret),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if procs is not None:
            procs.append(exporter)
        wait_port(port)
        up = scrape(port, accept).count(b"avepoint_scan_profile_up{")
        time.sleep(2)
        per_profile_us = []
        for _ in range(scrapes):
            before = run_time_ns(exporter.pid)
            scrape(port, accept)
            per_profile_us.append((run_time_ns(exporter.pid) - before) / profiles / 1e3)
        with open("/proc/%d/status" % exporter.pid) as f:
            peak = [int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM")][0]
        return up, per_profile_us, peak
    finally:
        if procs is None:
            exporter.kill()
            exporter.wait()


def cpu_figure(run):
    up, per_profile_us, peak = cpu_samples(
        run.binary, run.config_file, run.secret, run.profiles, run.scrapes, run.accept, run.procs)
    per_profile_us.sort()
    return ("%d up lines; CPU per profile per scrape min %.1f median %.1f mean %.1f max %.1f us; "
            "peak RSS %.1f MiB" % (up, per_profile_us[0], per_profile_us[len(per_profile_us) // 2],
                                   sum(per_profile_us) / run.scrapes, per_profile_us[-1], peak))


if __name__ == "__main__":
    Run(default_scrapes=30).measure(cpu_figure)
