#!/usr/bin/env bash
# benches/blob-servers.sh: builds what the /blob runs need, then execs the Python run it is given
# (large.sh and slow_readers.sh call it; not meant to be run by hand).
#
#   blob-servers.sh RUN.py
#
# lameduck's side is examples/slow_work (its GET /blob serves one shared allocation), built with
# `cargo build --release --example slow_work` unless SLOW_WORK_BIN names a build; the peers come
# from build-peers.sh. Servers that cannot be built here are dropped from SERVERS with a message.
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$benches")"
run="${1:?usage: blob-servers.sh RUN.py}"
name="$(basename "$run" .py)"

need() { command -v "$1" >/dev/null 2>&1 || { echo "$name: '$1' not found ($2)" >&2; exit 1; }; }
need taskset "apt-get install util-linux"
need python3 "the harness is Python 3 (standard library only)"
need cargo "https://rustup.rs"

servers="${SERVERS:-lameduck,floor,hyper,axum,actix,go-chi,nginx}"
has() { [[ ",$servers," == *",$1,"* ]]; }
drop() { servers="$(echo ",$servers," | sed "s/,$1,/,/g")"; echo "$name: skipping $1 ($2)" >&2; }

if has lameduck && [[ -z "${SLOW_WORK_BIN:-}" ]]; then
    echo "==> cargo build --release --example slow_work (lameduck)" >&2
    (cd "$root" && cargo build --release --quiet --example slow_work)
    export SLOW_WORK_BIN="${CARGO_TARGET_DIR:-$root/target}/release/examples/slow_work"
fi

"$benches/build-peers.sh"
out="$benches/peers/target/release"
if has floor && [[ ! -x "$out/floor" ]]; then
    drop floor "apt-get install gcc"
fi
if has go-chi && [[ ! -x "$out/peer-go-chi" ]]; then
    drop go-chi "apt-get install golang-go golang-github-go-chi-chi-dev"
fi
if has nginx && [[ ! -x "${NGINX_BIN:-/usr/sbin/nginx}" ]]; then
    drop nginx "apt-get install nginx-light"
fi
servers="$(echo "$servers" | tr -s ',' | sed 's/^,//; s/,$//')"

ulimit -n "$(ulimit -Hn)"
export SERVERS="$servers"
exec python3 "$run"
