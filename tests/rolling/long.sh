#!/usr/bin/env bash
# The long rolling-update run: the example program `slow_work` (lameduck with a worker pool)
# behind HAProxy under continuous load (quick GETs, slow requests, uploads, downloads checked byte
# for byte), >= 10 replacements
# per run, in four runs: HAProxy `mode tcp` and `mode http` (pooled server connections), each
# with lameduck's defaults (must lose nothing) and in the naive control mode
# (`--shutdown-delay 0`, must lose requests); then one results table for all four.
#
# Usage: tests/rolling/long.sh
# Knobs (environment): ROLLING_RESTARTS (default 10), ROLLING_LAG (default 2s),
#   ROLLING_KEEPALIVE_CLIENTS / ROLLING_NEWCONN_CLIENTS / ROLLING_IDLE_CLIENTS /
#   ROLLING_SLOW_CLIENTS / ROLLING_UPLOAD_CLIENTS / ROLLING_DOWNLOAD_CLIENTS
#   (default 4 / 4 / 32 / 16 / 4 / 4),
#   ROLLING_SEED (replay the clients' random choices), ROLLING_HAPROXY (haproxy path),
#   ROLLING_KEEP_LOGS=1 (keep every process's log). CARGO_TARGET_DIR is honoured as usual.
# It builds and tests the release build through
# `cargo test --release --test rolling_update -- --ignored long_`; the detailed per-restart tables
# are printed by the tests themselves, the summary table comes last. Exit status is the tests'.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# `cargo test --test NAME` does not build the examples; the server is one.
cargo build --release --example slow_work

status=0
cargo test --release --test rolling_update -- --ignored --nocapture --test-threads 1 long_ 2>&1 | tee "$out" || status=$?

if [ "$(grep -c '^RESULT ' "$out")" -ne 4 ]; then
    echo "long.sh: expected four RESULT lines (tcp and http, default and naive); was haproxy found? see the output above" >&2
    exit 1
fi

echo
haproxy=${ROLLING_HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
echo "## Rolling-update long run ($(date -u +%Y-%m-%d), $("$haproxy" -v 2>/dev/null | head -1 | cut -d" " -f1-3 || true))"
echo
echo "| run | proxy | --shutdown-delay | lag | restarts | requests | slow ok | uploads ok (MiB) | downloads ok (MiB) | failures | refused | reset | eof | timeout | non200 (by status) | wrong | other | of the failures: closed under a written request | HAProxy error log | idle conns closed by DRAIN | closed while idle, detected before reuse (not failures) | reset while idle | bodies being written at SIGTERM | in flight at DRAIN (of which answers pending, bodies being written) | answered after SIGTERM | abandoned | old process exit codes | stop times (s) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
grep '^RESULT ' "$out" | awk '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = substr($i, length(kv[1]) + 2) }
    printf "| %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s (%s) | %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s | %s (%s, %s) | %s | %s | %s | %s |\n",
        v["label"], v["proxy"], v["shutdown_delay"], v["lag"], v["restarts"], v["requests"],
        v["slow_ok"], v["upload_ok"], v["upload_mib"], v["download_ok"], v["download_mib"], v["failures"],
        v["refused"], v["reset"], v["eof"], v["timeout"], v["non200"], v["statuses"], v["wrong"], v["other"],
        v["closed_under_request"], v["proxy_errors"], v["idle_at_drain"], v["closed_before_reuse"],
        v["reset_before_reuse"], v["writing_at_sigterm"], v["active_at_drain"], v["pending_at_drain"], v["writing_at_drain"],
        v["served_after_signal"], v["abandoned"],
        v["exit_codes"], v["stop_times_s"]
}'
exit "$status"
