#!/usr/bin/env bash
# Fuzz smoke test: build every cargo-fuzz target in fuzz/ and run each for
# SECONDS (default 30) from the committed seed corpus; fail on any crash,
# panic, timeout or out-of-memory. See docs/fuzzing.md.
#
#   tests/e2e/fuzz_smoke.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). On stable Rust the
# nightly-only flags cargo-fuzz passes are allowed through RUSTC_BOOTSTRAP=1.
# Built without a sanitizer (-s none): the exporter forbids unsafe code, so
# AddressSanitizer finds nothing here that debug assertions and panics do
# not, and it costs about twice the build and run time.
#
# Findings go to fuzz/artifacts/<target>/; reproduce one with
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> artifacts/<target>/<file>
set -euo pipefail

seconds=${1:-30}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz_smoke: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi

start=$(date +%s)
echo "fuzz_smoke: building the fuzz targets (cargo fuzz build -s none)"
cargo fuzz build -s none
built=$(date +%s)
echo "fuzz_smoke: build took $((built - start)) s"

triple=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p artifacts
failed=()
for target in $(cargo fuzz list); do
    # A scratch corpus per run: the committed seeds stay as they are.
    work=$(mktemp -d)
    seeds=()
    mkdir -p "artifacts/$target"
    [ -d "corpus-seed/$target" ] && seeds=("corpus-seed/$target")
    echo "fuzz_smoke: $target for ${seconds}s from ${seeds[*]:-no seeds}"
    # The binary itself: `cargo fuzz run` would check the build again per target.
    if "target/$triple/release/$target" "$work" "${seeds[@]}" \
        -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 >"$work.log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || true)
        cov=$(grep -o 'cov: [0-9]*' "$work.log" | tail -1 || true)
        echo "fuzz_smoke: $target ok: ${runs:-?} runs, ${cov:-cov ?}, corpus $(ls "$work" | wc -l)"
    else
        echo "fuzz_smoke: $target FAILED; the end of its log:" >&2
        tail -n 60 "$work.log" >&2
        failed+=("$target")
    fi
    rm -rf "$work" "$work.log"
done

echo "fuzz_smoke: total $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz_smoke: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz_smoke: $(cargo fuzz list | wc -l) targets, no crash"
