#!/usr/bin/env bash
# Bytes on the wire, exporter CPU and peak RSS per /metrics scrape, gzip
# (what Prometheus asks for) against identity, at 1,000 and 10,000 profiles.
# Measured from outside: curl's size_download, utime+stime of the exporter
# from /proc/PID/stat over SCRAPES whole scrapes, VmHWM from /proc/PID/status.
# Loopback only; the simulator answers at once and the exporter serves
# from its cache (cache_ttl) after a warm-up, so the figures are encoding
# and compression, not AvePoint.
#
#   cargo build --release --locked && bash benches/compression.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/avepoint-exporter}
SCRAPES=${SCRAPES:-5}
SIM_PORT=18291
EXP_PORT=18290
hz=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cpu_seconds() { awk -v hz="$hz" '{ split($0, a, ") "); split(a[2], f, " "); print (f[12] + f[13]) / hz }' "/proc/$1/stat"; }

printf '| profiles | encoding | bytes on the wire | exporter CPU per scrape | peak RSS |\n|---:|---|---:|---:|---:|\n'
for customers in 100 1000; do
  "$BIN" simulate --web.listen-address "127.0.0.1:$SIM_PORT" --customers "$customers" \
    --profiles-per-customer 10 > "$work/sim.out" 2>/dev/null &
  sim=$!
  for _ in $(seq 50); do grep -q '^avepoint:' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
  for encoding in identity gzip; do
    cat > "$work/avepoint.yml" <<YAML
avepoint:
  base_url: http://127.0.0.1:$SIM_PORT
  token_url: http://127.0.0.1:$SIM_PORT/connect/token
  client_id: $(sed -n 's/^  client id: *//p' "$work/sim.out")
  concurrency: 64
  cache_ttl: 1h
  round_timeout: 60s
discovery:
  enabled: true
YAML
    AVEPOINT_CLIENT_SECRET=$(sed -n 's/^  client secret: *//p' "$work/sim.out") \
      "$BIN" serve --config.file "$work/avepoint.yml" --web.listen-address "127.0.0.1:$EXP_PORT" \
      --log.level warn 2> "$work/exporter.log" &
    exporter=$!
    for _ in $(seq 600); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$EXP_PORT/-/ready")" = 200 ] && break
      sleep 0.1
    done
    get() {
      curl -s -o /dev/null -w '%{size_download}' -H "Accept-Encoding: $encoding" \
        -H 'Accept: application/openmetrics-text;version=1.0.0' \
        -H 'X-Prometheus-Scrape-Timeout-Seconds: 60' "http://127.0.0.1:$EXP_PORT/metrics"
    }
    get > /dev/null # warm-up: fetch every profile once, into the cache
    before=$(cpu_seconds "$exporter")
    bytes=0
    for _ in $(seq "$SCRAPES"); do bytes=$(get); done
    after=$(cpu_seconds "$exporter")
    peak=$(awk '/^VmHWM:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$exporter/status")
    cpu=$(awk -v a="$after" -v b="$before" -v n="$SCRAPES" 'BEGIN { printf "%.0f ms", (a - b) * 1000 / n }')
    printf '| %s | %s | %s | %s | %s |\n' "$((customers * 10))" "$encoding" "$bytes" "$cpu" "$peak"
    kill "$exporter"; wait "$exporter" 2>/dev/null || true
  done
  kill "$sim"; wait "$sim" 2>/dev/null || true
done
