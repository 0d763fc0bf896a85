#!/usr/bin/env python3
"""CPU per profile of two or more exporter builds, interleaved, from outside.

Usage: python3 benches/support/interleaved.py [--rounds N] [--scrapes N] [--simulator BIN] [--openmetrics] BIN...

This VM's speed drifts by a factor of two over minutes (BENCHMARKS.md), so
a figure on its own says as much about the hour as about the build. Run
builds in turn (A, B, A, B, ...) against one simulator and compare them
within each round: the ratio holds where the absolute figures do not.

One `simulate` (1,000 profiles, 10 per customer, zero latency) from
--simulator (default: the last BIN, the newest build, whose simulator
answers AvePoint's documented JSON), so every build reads the same report
bodies; then, ROUNDS times (default 4), each BIN in the order given:
started on the config the simulator printed (default settings), one cold
scrape, 2 s to settle, SCRAPES (default 20) warm scrapes (Prometheus
text, or OpenMetrics with --openmetrics) measured one by one from
/proc/PID/task/*/schedstat, as cpu_per_scrape.py does. Prints each run's
min and median per profile, then per BIN the median of its run medians
and its ratio to the first BIN's. Everything on 127.0.0.1.
"""
import argparse
import os
import statistics
import tempfile

from cpu_per_scrape import OPENMETRICS, cpu_samples, start_simulator


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--simulator", metavar="BIN")
    parser.add_argument("--openmetrics", action="store_true")
    parser.add_argument("binaries", nargs="+", metavar="BIN")
    args = parser.parse_args()
    profiles = 1000
    workdir = tempfile.mkdtemp()
    simulator, config_file, secret = start_simulator(args.simulator or args.binaries[-1], profiles, workdir)
    medians = {binary: [] for binary in args.binaries}
    try:
        for round_number in range(1, args.rounds + 1):
            for binary in args.binaries:
                up, samples, peak = cpu_samples(binary, config_file, secret, profiles, args.scrapes,
                                               OPENMETRICS if args.openmetrics else None)
                median = statistics.median(samples)
                medians[binary].append(median)
                print("round %d  %-50s %4d up  min %5.1f  median %5.1f us  peak RSS %.1f MiB"
                      % (round_number, binary, up, min(samples), median, peak), flush=True)
    finally:
        simulator.kill()
    first = statistics.median(medians[args.binaries[0]])
    for binary in args.binaries:
        figure = statistics.median(medians[binary])
        print("%-50s median of medians %5.1f us  ratio to the first %.2f"
              % (binary, figure, figure / first))


if __name__ == "__main__":
    main()
