#!/usr/bin/env bash
# Regenerate the simulator part of fuzz/corpus-seed/ from a running
# `avepoint-exporter simulate` (the hand-written seeds are left alone).
#
#   fuzz/gen_corpus.sh [path/to/avepoint-exporter]
#
# Needs curl and python3. Writes a profile body from each profile endpoint
# (the `changes` one carries the object lists), a customers page, a scan
# profiles page and an error body, then copies the test config files.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${1:-$root/target/release/avepoint-exporter}
seed=$here/corpus-seed
port=${FUZZ_SIM_PORT:-10391}
api=http://127.0.0.1:$port

[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release first" >&2; exit 1; }
"$bin" simulate --web.listen-address "127.0.0.1:$port" --customers 2 --profiles-per-customer 2 \
    --log.level warn &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -s -o /dev/null "$api/" 2>/dev/null && break
    sleep 0.1
done

token=$(curl -sf "$api/connect/token" \
    -d grant_type=client_credentials \
    -d client_id=5e1fc11e-0000-4000-8000-00000000de30 \
    -d client_secret=demo-secret-not-for-production \
    --data-urlencode "scope=elements.scanprofiles.read.all elements.customers.read.all" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
get() { curl -sf -H "Authorization: Bearer $token" "$@"; }
base=$api/partner/external/v3/general/customers

mkdir -p "$seed/api_report" "$seed/discovery_page" "$seed/config_yaml"
get -X POST -H 'Content-Type: application/json' -d '{}' "$base/batch?pageIndex=1&pageSize=2" \
    > "$seed/discovery_page/sim-customers.json"
customer=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])' \
    < "$seed/discovery_page/sim-customers.json")
get -X POST -H 'Content-Type: application/json' -d '{}' "$base/$customer/scan-profiles/batch" \
    > "$seed/discovery_page/sim-profiles.json"
profile=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["profileId"])' \
    < "$seed/discovery_page/sim-profiles.json")
get "$base/$customer/scan-profiles-v2/$profile" > "$seed/api_report/sim-v2.json"
get "$base/$customer/scan-profiles/$profile/changes" > "$seed/api_report/sim-changes.json"
curl -s "$base/$customer/scan-profiles-v2/$profile" > "$seed/api_report/sim-401-error.json"

cp "$root"/tests/testdata/config/*.yml "$seed/config_yaml/"
echo "seed corpus in $seed:"
find "$seed" -type f | sort | sed "s|$root/||"
