#!/usr/bin/env bash
# benches/compare.sh: build what is missing, then benchmark lameduck against the peers.
#
#   benches/compare.sh                 full run (3 rounds x 10 s per profile, ~15 min)
#   QUICK=1 benches/compare.sh         smoke run (1 round x 2 s, 2,000 idle connections)
#
# Writes benches/results/results.{md,json,png}. Knobs (environment): ROUNDS, DURATION, WARMUP,
# IDLE_CONNS, PROFILES (c64,c512,p16), SERVERS (lameduck,lameduck-musl,floor,hyper,axum,actix,
# go-chi,nginx), PIPELINE_DEPTH, SERVER_CPU, CLIENT_CPU, BASE_PORT, BASELINE, OUT_DIR,
# LAMEDUCK_BIN / LAMEDUCK_MUSL_BIN (skip the root builds and use these binaries), LAMEDUCK_ARGS
# (extra serve flags), PERF (comma list of servers to `perf record` in round 1).
# See benches/README.md.
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$benches")"
peers="$benches/peers"
out="$peers/target/release"

need() { command -v "$1" >/dev/null 2>&1 || { echo "compare.sh: '$1' not found ($2)" >&2; exit 1; }; }
need wrk "apt-get install wrk"
need taskset "apt-get install util-linux"
need python3 "the harness is Python 3 (standard library only)"
need cargo "https://rustup.rs"
need gnuplot "apt-get install gnuplot-nox (for results.png)"

servers="${SERVERS:-lameduck,lameduck-musl,floor,hyper,axum,actix,go-chi,nginx}"
has() { [[ ",$servers," == *",$1,"* ]]; }
drop() { servers="$(echo ",$servers," | sed "s/,$1,/,/g")"; echo "compare.sh: skipping $1 ($2)" >&2; }

# lameduck itself: the repo's release build (host target), unless LAMEDUCK_BIN points at one.
# lameduck-musl: the static musl build the scratch image ships (deploy/build-static.sh, which
# the Dockerfile runs), unless LAMEDUCK_MUSL_BIN points at one; skipped when only LAMEDUCK_BIN
# is given (you asked for that binary) or when the musl target is not installed.
musl=x86_64-unknown-linux-musl
if [[ -z "${LAMEDUCK_BIN:-}" ]]; then
    echo "==> cargo build --release (lameduck)" >&2
    (cd "$root" && cargo build --release --quiet)
    export LAMEDUCK_BIN="${CARGO_TARGET_DIR:-$root/target}/release/lameduck"
    if has lameduck-musl && [[ -z "${LAMEDUCK_MUSL_BIN:-}" ]]; then
        if rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
            echo "==> deploy/build-static.sh (lameduck-musl)" >&2
            read -r LAMEDUCK_MUSL_BIN _ < <("$root/deploy/build-static.sh")
            export LAMEDUCK_MUSL_BIN
        else
            drop lameduck-musl "rustup target add $musl"
        fi
    fi
elif has lameduck-musl && [[ -z "${LAMEDUCK_MUSL_BIN:-}" ]]; then
    drop lameduck-musl "LAMEDUCK_BIN given without LAMEDUCK_MUSL_BIN"
fi
[[ -x "$LAMEDUCK_BIN" ]] || { echo "compare.sh: no lameduck binary at $LAMEDUCK_BIN" >&2; exit 1; }

# The Rust peers, the floor (a minimal C epoll responder) and Go + chi.
need gcc "apt-get install gcc"
"$benches/build-peers.sh"

# The malloc-counting LD_PRELOAD shim for the heap-allocation figures.
if [[ ! -f "$peers/target/alloccount.so" || "$benches/alloc/alloccount.c" -nt "$peers/target/alloccount.so" ]]; then
    echo "==> gcc alloccount.c" >&2
    gcc -O2 -Wall -shared -fPIC -o "$peers/target/alloccount.so" "$benches/alloc/alloccount.c"
fi

if has go-chi && [[ ! -x "$out/peer-go-chi" ]]; then
    drop go-chi "apt-get install golang-go golang-github-go-chi-chi-dev"
fi

if has nginx && [[ ! -x "${NGINX_BIN:-/usr/sbin/nginx}" ]]; then
    drop nginx "apt-get install nginx-light; without it there are no ratios unless BASELINE names another server"
fi
servers="$(echo "$servers" | tr -s ',' | sed 's/^,//; s/,$//')"

# 10,000 idle connections need descriptors in the server and in the client.
ulimit -n "$(ulimit -Hn)"

export SERVERS="$servers"
exec python3 "$benches/harness.py"
