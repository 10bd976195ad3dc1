#!/usr/bin/env bash
# The long rolling-update run: lameduck behind HAProxy under continuous load, >= 10 replacements in
# lameduck's default mode (must lose nothing) and again in the naive control mode
# (`--shutdown-delay 0`, must lose requests), then one results table for both.
#
# Usage: tests/rolling/long.sh
# Knobs (environment): ROLLING_RESTARTS (default 10), ROLLING_LAG (default 2s),
#   ROLLING_KEEPALIVE_CLIENTS / ROLLING_NEWCONN_CLIENTS / ROLLING_IDLE_CLIENTS (default 4 / 4 / 32),
#   ROLLING_SEED (replay the idle clients' think times), ROLLING_HAPROXY (haproxy path),
#   ROLLING_KEEP_LOGS=1 (keep every process's log). CARGO_TARGET_DIR is honoured as usual.
# It builds and tests the release binary (target/release/lameduck) through
# `cargo test --release --test rolling_update -- --ignored long_`; the detailed per-restart tables
# are printed by the test itself, the summary table comes last. Exit status is the tests' status.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT

status=0
cargo test --release --test rolling_update -- --ignored --nocapture --test-threads 1 long_ 2>&1 | tee "$out" || status=$?

if [ "$(grep -c '^RESULT ' "$out")" -ne 2 ]; then
    echo "long.sh: expected two RESULT lines (default and naive); was haproxy found? see the output above" >&2
    exit 1
fi

echo
haproxy=${ROLLING_HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
echo "## Rolling-update long run ($(date -u +%Y-%m-%d), $("$haproxy" -v 2>/dev/null | head -1 | cut -d" " -f1-3 || true))"
echo
echo "| mode | --shutdown-delay | lag | restarts | requests | failures | refused | reset | eof | timeout | non200 | other | of the failures: closed under a written request | idle conns closed by DRAIN | closed while idle, detected before reuse (not failures) | reset while idle | old process exit codes | stop times (s) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
grep '^RESULT ' "$out" | awk '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = substr($i, length(kv[1]) + 2) }
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        v["label"], v["shutdown_delay"], v["lag"], v["restarts"], v["requests"], v["failures"],
        v["refused"], v["reset"], v["eof"], v["timeout"], v["non200"], v["other"],
        v["closed_under_request"], v["idle_at_drain"],
        v["idle_closed_before_reuse"] + v["keepalive_closed_before_reuse"], v["reset_before_reuse"],
        v["exit_codes"], v["stop_times_s"]
}'
exit "$status"
