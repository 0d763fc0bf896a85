# shellcheck shell=bash
# Sourced by the check_*.sh scripts: `step NAME COMMAND...` runs one check,
# says ok or FAILED, and carries on; `finish SCRIPT` sums them up and exits
# 1 when any failed, so one run reports every broken check, not the first.

passed=0
failed=()
step() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then
    echo "-- ok: $name"
    passed=$((passed + 1))
  else
    echo "-- FAILED: $name"
    failed+=("$name")
  fi
}

finish() {
  echo
  echo "$1: ${passed} passed, ${#failed[@]} failed"
  if [ ${#failed[@]} -gt 0 ]; then
    printf '%s: FAILED: %s\n' "$1" "${failed[@]}"
    exit 1
  fi
}
