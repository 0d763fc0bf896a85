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
import subprocess
import time

from cpu_per_scrape import Run, free_port, scrape, wait_port


def instructions_figure(run):
    port = free_port()
    out = os.path.join(run.workdir, "callgrind.out")
    # valgrind lowers the open-files limit the default connection cap is
    # derived from: name one.
    exporter = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out,
         run.binary, "--config.file", run.config_file, "--web.listen-address", "127.0.0.1:%d" % port,
         "--web.max-connections", "64"],
        env=dict(os.environ, AVEPOINT_CLIENT_SECRET=run.secret),
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(run.workdir, "valgrind.log"), "w"))
    run.procs.append(exporter)
    wait_port(port, 120)
    time.sleep(3)
    up = scrape(port, run.accept, 300).count(b"avepoint_scan_profile_up{")
    scrape(port, run.accept, 300)
    time.sleep(3)

    def control(*args):
        subprocess.run(["callgrind_control", *args, str(exporter.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    control("-i", "on")
    for _ in range(run.scrapes):
        scrape(port, run.accept, 300)
    control("-i", "off")
    control("-d")
    time.sleep(1)
    total = 0
    for dump in glob.glob(out + "*"):
        for line in open(dump):
            if line.startswith("totals:"):
                total = max(total, int(line.split()[1]))
    return "%d up lines; %.0f instructions per profile per scrape" % (up, total / run.scrapes / run.profiles)


if __name__ == "__main__":
    Run(default_scrapes=3).measure(instructions_figure)
