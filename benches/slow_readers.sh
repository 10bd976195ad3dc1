#!/usr/bin/env bash
# benches/slow_readers.sh: slow readers of a large shared body (issue 15). Two shapes per server
# (lameduck's examples/slow_work, the floor, hyper, axum, actix-web, Go + chi, nginx):
#   memory   500 clients read GET /blob (8 MiB, shared) at 120 KiB/s: user-space KiB per reader
#            (RSS during - RSS idle) / 500, sampled every second (min / median / max), and
#            whether GET / is still answered meanwhile;
#   latency  20 clients read it at 200 KB/s: GET / and GET /health latency on fresh
#            connections, against the idle server's.
#
#   benches/slow_readers.sh           1 round, 12 s + 2 x 6 s per server, about 4 min
#   QUICK=1 benches/slow_readers.sh   6 s + 2 x 3 s per server
#
# Writes benches/results/slow-readers.{md,json}. Knobs (environment): ROUNDS, SHAPES
# (memory,latency), READERS, RATE (bytes/s), DURATION, LAT_READERS, LAT_RATE, LAT_DURATION,
# SAMPLE_S, PROBE_EVERY_S, TICK_S, CLIENT_MSS, CLIENT_RCVBUF, SERVERS, SERVER_CPU,
# CLIENT_CPU, BASE_PORT, OUT_DIR, SLOW_WORK_BIN. See benches/README.md, "Slow readers".
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$benches/blob-servers.sh" "$benches/slow_readers.py"
