#!/usr/bin/env bash
# benches/inflight.sh: in-flight capacity. 10,000 keep-alive connections, each request answered
# 100 ms later from another thread; req/s, latency and memory per pending request for lameduck
# (one timer thread holding the reply handles), Go + chi, axum and actix-web.
#
#   benches/inflight.sh              3 interleaved rounds x 10 s per server, about 4 min
#   QUICK=1 benches/inflight.sh      1 round x 4 s
#
# Writes benches/results/inflight.{md,json}. Knobs (environment): ROUNDS, DURATION, CONNS,
# DELAY_MS, SERVERS (lameduck,go-chi,axum,actix,ceiling), SERVER_CPU, CLIENT_CPU, BASE_PORT,
# OUT_DIR. See benches/README.md, "In-flight capacity".
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for tool in wrk taskset python3 cargo; do
    command -v "$tool" >/dev/null 2>&1 || { echo "inflight.sh: '$tool' not found" >&2; exit 1; }
done

servers="${SERVERS:-lameduck,go-chi,axum,actix,ceiling}"
"$benches/build-peers.sh"
if [[ ",$servers," == *",go-chi,"* && ! -x "$benches/peers/target/release/peer-go-chi" ]]; then
    echo "inflight.sh: skipping go-chi (apt-get install golang-go golang-github-go-chi-chi-dev)" >&2
    servers="$(echo ",$servers," | sed 's/,go-chi,/,/; s/^,//; s/,$//')"
fi

# CONNS connections need as many descriptors in wrk and in the server.
ulimit -n "$(ulimit -Hn)"

export SERVERS="$servers"
exec python3 "$benches/inflight.py"
