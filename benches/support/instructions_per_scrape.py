#!/usr/bin/env python3
"""User-space instructions per profile per warm scrape, counted by callgrind.

Usage: python3 benches/support/instructions_per_scrape.py BIN [PROFILES] [SCRAPES] [openmetrics]

Time on a shared VM moves more between runs than most changes do; an
instruction count does not: two runs of the same binary agree within
0.2 %. So this is the figure to compare two builds by (it leaves out the
kernel's share, about 30 % of a scrape's time, and weighs a simple loop
the same as a cache miss: confirm a gain in time with cpu_per_scrape.py).

Starts `BIN simulate` (PROFILES profiles, 10 per customer, zero latency)
natively and the exporter under `valgrind --tool=callgrind` with
instrumentation off; after two scrapes and 3 s of settling, turns it on
for SCRAPES scrapes and reads the total. Needs valgrind (apt-get install
valgrind); everything on 127.0.0.1.
"""
import glob
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


def wait_port(port, seconds):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("nothing listens on port %d" % port)


def scrape(port, accept):
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "120"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, headers=headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.read()


def main():
    binary = sys.argv[1]
    profiles = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    scrapes = int(sys.argv[3]) if len(sys.argv) > 3 else 3
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
        wait_port(sim_port, 30)
        time.sleep(0.5)
        text = open(sim_out).read()
        secret = [l.split(":", 1)[1].strip() for l in text.splitlines()
                  if l.strip().startswith("client secret:")][0]
        config = "\n".join(l for l in text[text.index("avepoint:"):].splitlines()
                           if not l.startswith("ts="))
        config_file = os.path.join(workdir, "avepoint.yml")
        open(config_file, "w").write(config + "\n")
        out = os.path.join(workdir, "callgrind.out")
        # valgrind lowers the open-files limit the default connection cap
        # is derived from: name one.
        exporter = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out,
             binary, "--config.file", config_file, "--web.listen-address", "127.0.0.1:%d" % port,
             "--web.max-connections", "64"],
            env=dict(os.environ, AVEPOINT_CLIENT_SECRET=secret),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, "valgrind.log"), "w"))
        procs.append(exporter)
        wait_port(port, 120)
        time.sleep(3)
        up = scrape(port, accept).count(b"avepoint_scan_profile_up{")
        scrape(port, accept)
        time.sleep(3)
        control = ["callgrind_control"]
        subprocess.run(control + ["-i", "on", str(exporter.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        for _ in range(scrapes):
            scrape(port, accept)
        subprocess.run(control + ["-i", "off", str(exporter.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        subprocess.run(control + ["-d", str(exporter.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        time.sleep(1)
        total = 0
        for dump in glob.glob(out + "*"):
            for line in open(dump):
                if line.startswith("totals:"):
                    total = max(total, int(line.split()[1]))
        print("%s %s, %d profiles (%d up lines), %d warm scrapes: %.0f instructions per profile per scrape"
              % (os.path.basename(binary), "OpenMetrics" if accept else "text", profiles, up,
                 scrapes, total / scrapes / profiles))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    main()
