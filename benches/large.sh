#!/usr/bin/env bash
# benches/large.sh: large answers (issue 15). Server CPU seconds per GiB served and req/s for
# 1 MiB and 8 MiB shared bodies (GET /blob?bytes=N), keep-alive wrk, lameduck's
# examples/slow_work against the floor, hyper, axum, actix-web, Go + chi and nginx; GET / latency
# during that load against idle.
#
#   benches/large.sh              3 interleaved rounds x 6 s per size, about 6 min
#   QUICK=1 benches/large.sh      1 round x 2 s per size
#
# Writes benches/results/large.{md,json}. Knobs (environment): ROUNDS, DURATION, WARMUP, CONNS
# (16), SIZES (bytes, comma list, each <= 8 MiB; nginx has files for 1 MiB and 8 MiB only),
# SERVERS (lameduck,floor,hyper,axum,actix,go-chi,nginx), BASELINE (floor), PROBE_EVERY_S,
# IDLE_PROBES, SERVER_CPU, CLIENT_CPU, BASE_PORT, OUT_DIR, SLOW_WORK_BIN (use this build of
# examples/slow_work instead of building it). See benches/README.md, "Large answers".
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$benches/blob-servers.sh" "$benches/large.py"
