#!/usr/bin/env bash
# Build the release binary of a commit, to measure it beside the current
# one (interleaved.py): prints the binary's path.
#
# Usage: bash benches/support/build_at.sh COMMIT
#
# The commit's tree goes to $AVEPOINT_BUILDS/<commit> (default
# /tmp/avepoint-builds) with a target dir of its own, so the working
# tree's build is untouched; a second call reuses it. Run from the repo.
set -euo pipefail
commit=$(git rev-parse --short "$1^{commit}")
dir=${AVEPOINT_BUILDS:-/tmp/avepoint-builds}/$commit
if [ ! -f "$dir/Cargo.toml" ]; then
  mkdir -p "$dir"
  git archive "$commit" | tar -x -C "$dir"
fi
(cd "$dir" && cargo build --release --locked --quiet)
echo "$dir/target/release/avepoint-exporter"
