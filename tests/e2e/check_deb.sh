#!/usr/bin/env bash
# The Debian package, as a user meets it: build it with cargo-deb from the
# release binary, install it with dpkg, check what it put where, then purge
# it and check it is gone. Needs root (dpkg) and target/release/avepoint-exporter.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "check_deb: FAIL: $*" >&2; exit 1; }
step() { printf -- '-- %s\n' "$*"; }

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet --version 3.8.0
deb=$(cargo deb --no-build --locked --output target/debian/ 2>/dev/null | tail -n 1)
[ -f "$deb" ] || fail "cargo deb made no package ($deb)"
step "built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'

if dpkg -s avepoint-exporter >/dev/null 2>&1; then
  dpkg --purge avepoint-exporter >/dev/null
fi
dpkg -i "$deb" >/dev/null
trap 'dpkg --purge avepoint-exporter >/dev/null 2>&1 || true' EXIT

step "installed"
version=$(/usr/bin/avepoint-exporter --version)
echo "$version" | sed 's/^/   /'
case "$version" in
  "avepoint-exporter $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | sed -n 1p) (branch: "*) ;;
  *) fail "--version says: $version" ;;
esac

owner() { stat -c '%U:%G %a' "$1"; }
[ "$(owner /usr/bin/avepoint-exporter)" = "root:root 755" ] || fail "binary: $(owner /usr/bin/avepoint-exporter)"
getent passwd avepoint-exporter >/dev/null || fail "no system user avepoint-exporter"
[ "$(getent passwd avepoint-exporter | cut -d: -f7)" != "/bin/bash" ] || fail "the system user has a login shell"
[ "$(owner /etc/avepoint-exporter)" = "root:avepoint-exporter 750" ] || fail "/etc/avepoint-exporter: $(owner /etc/avepoint-exporter)"
[ -f /etc/avepoint-exporter/avepoint.yml.example ] || fail "no example config"
[ ! -e /etc/avepoint-exporter/avepoint.yml ] || fail "a config was installed; the service would start unconfigured"
unit=$(dpkg -L avepoint-exporter | grep '/systemd/system/avepoint-exporter.service$') || fail "no systemd unit"
grep -q '^ConditionPathExists=/etc/avepoint-exporter/avepoint.yml$' "$unit" || fail "the unit starts without a config"
grep -q '^ExecReload=' "$unit" || fail "the unit has no ExecReload"
# Socket activation is opt-in: the socket unit is an example to copy, never
# installed as a unit (enabled, it would hold :10290 against the service).
socket=/usr/share/avepoint-exporter/systemd/avepoint-exporter.socket
[ "$(owner "$socket")" = "root:root 644" ] || fail "no example socket unit at $socket"
if dpkg -L avepoint-exporter | grep -q '/systemd/system/.*\.socket$'; then
  fail "the package installs a socket unit; the service would lose its port to it"
fi
step "ownerships and files as expected; unit $unit; example socket $socket"

if command -v systemd-analyze >/dev/null 2>&1; then
  # The example config stands in for the admin's, so verify sees a unit that can start.
  systemd-analyze verify "$unit"
  # The example socket, as the admin installs it, next to the package's service.
  socket_dir=$(mktemp -d)
  cp "$socket" "$unit" "$socket_dir/"
  systemd-analyze verify "$socket_dir/avepoint-exporter.socket"
  rm -r "$socket_dir"
  step "systemd-analyze verify (service, example socket): OK"
else
  step "systemd-analyze not installed: unit not verified"
fi

# The example config is a valid config (with a placeholder id and no secret yet).
err=$(/usr/bin/avepoint-exporter check --config.file /etc/avepoint-exporter/avepoint.yml.example 2>&1 || true)
case "$err" in
  *"avepoint.client_secret_file"*"/etc/avepoint-exporter/client-secret"*) ;;
  *) fail "the example config should only lack its secret file, got: $err" ;;
esac
step "the example config parses (only the secret file is missing)"

dpkg --purge avepoint-exporter >/dev/null
trap - EXIT
[ ! -e /usr/bin/avepoint-exporter ] || fail "purge left the binary"
[ ! -e "$unit" ] || fail "purge left the unit"
[ ! -e /etc/avepoint-exporter ] || fail "purge left /etc/avepoint-exporter"
step "purged"
echo "check_deb: all checks passed"
