#!/bin/sh
# Validate the systemd units in deploy/systemd/ with systemd's own parser, offline (no systemd
# running as PID 1 is needed).
#
#   apt-get install systemd          # systemd-analyze
#   deploy/validate-systemd.sh [path/to/lameduck]
#
# `systemd-analyze verify` checks every key and value, the dependencies between the two units,
# and that each ExecStart=/ExecReload= command exists and is executable. The binary is not
# installed at /usr/local/bin on a build machine, so the units are verified as copies in which
# that one path names the freshly built binary (default: target/debug/lameduck); nothing else
# changes. verify only warns about an unknown or misspelt key (exit 0), so any output fails here.
# `systemd-analyze security --offline` then scores the sandbox: above 2.0 ("OK") fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-$here/../target/debug/lameduck}
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "deploy/validate-systemd.sh: systemd-analyze not found; apt-get install systemd" >&2
    exit 2
fi
[ -x "$binary" ] || { echo "deploy/validate-systemd.sh: no binary at $binary (cargo build)" >&2; exit 2; }

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
for unit in "$here"/systemd/lameduck.socket "$here"/systemd/lameduck.service; do
    sed "s#/usr/local/bin/lameduck#$binary#g" "$unit" >"$copy/$(basename "$unit")"
done

out=$(systemd-analyze verify "$copy/lameduck.socket" "$copy/lameduck.service" 2>&1) || {
    echo "$out" >&2
    exit 1
}
if [ -n "$out" ]; then
    echo "systemd-analyze verify warned:" >&2
    echo "$out" >&2
    exit 1
fi
systemd-analyze security --offline=yes --threshold=20 "$copy/lameduck.service" |
    tail -n 1
echo "deploy/systemd: lameduck.socket and lameduck.service verified"
