#!/usr/bin/env bash
# benches/memory.sh: worst-case memory per hostile connection, and whether --max-conns of them
# fit the Kubernetes manifest's memory limit (issue 9).
#
#   benches/memory.sh                                    this tree's release build, N = --max-conns
#   N=2000 benches/memory.sh                             2,000 clients of each kind (a short run)
#   BINS="main=/path/a new=/path/b" benches/memory.sh    compare binaries in one run
#   KINDS=half_head HEAD_BYTES=12288 benches/memory.sh   one kind, 12 KiB heads (needs a
#                                                        16 KiB --max-header-bytes)
#
# For each binary and each client kind, a fresh server (started with the manifest's serve flags)
# is warmed up, measured (VmRSS, VmHWM, kernel socket memory), made to hold N hostile clients of
# that kind, left to settle, measured again, and probed with a normal GET / on a fresh
# connection. Kinds:
#   pipeliner   pipelined GET / as fast as the socket takes them, never reading an answer
#   slow_body   POST / with Content-Length: 1000000, 16 KiB of body, then silence
#   half_head   HEAD_BYTES of request line + headers (a long Cookie), never the empty line
#
# Writes benches/results/memory.{md,json} and prints the table. Knobs (environment):
#   BINS                name=path pairs (space or comma separated); default: main=<this tree's
#                       cargo build --release>, built first
#   KINDS               comma list of kinds (pipeliner,slow_body,half_head)
#   N                   hostile clients per kind; default and ceiling --max-conns - 1 (the last
#                       slot is the probe's: at the limit a new client waits in the backlog)
#   MANIFEST            deploy/kubernetes.yaml: serve flags and resources.limits.memory
#   MEM_LIMIT           override the limit (bytes or a Kubernetes quantity: 128Mi, 1Gi)
#   MAX_CONNS           override --max-conns (default: the manifest's flag, else the binary's)
#   HEAD_BYTES          half_head size, under the server's header limit (7168)
#   BODY_BYTES          slow_body's body bytes sent (16384); CONTENT_LENGTH it announces (1000000)
#   PIPELINE_MAX_BYTES  most request bytes one pipeliner sends (1048576)
#   CLIENT_MSS          MSS the hostile clients negotiate (1448, an Ethernet path; 0 = loopback's
#                       64 KiB, which makes Linux give every server socket a ~4 MiB send buffer)
#   CLIENT_SNDBUF / CLIENT_RCVBUF  the clients' own socket buffers (32768 / 4096)
#   HOLD_ARGS           flags that keep the clients open while measured
#                       ("--header-timeout 600s --idle-timeout 600s")
#   SERVER_ARGS         more serve flags, after everything else (later flags win)
#   SETTLE_S / SETTLE_MAX_S  RSS must stay put this long (1) / give up after (30)
#   OUT_DIR             where the reports go (benches/results; server logs in tmp/ under it)
#
# Raises the descriptor limit (ulimit -n) for itself and the server, the hard limit too when it
# may (root with CAP_SYS_RESOURCE). Needs python3 (standard library) and ss (iproute2). The
# pipeliner fills the server's kernel socket buffers: 10,000 of them take a few GiB of the
# machine-wide tcp_mem budget for a few seconds, which other TCP users on the machine feel.
# See benches/README.md.
set -euo pipefail

benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$benches")"

need() { command -v "$1" >/dev/null 2>&1 || { echo "memory.sh: '$1' not found ($2)" >&2; exit 1; }; }
need python3 "the clients are Python 3 (standard library only)"
need ss "apt-get install iproute2"

if [[ -z "${BINS:-}" ]]; then
    need cargo "https://rustup.rs"
    echo "==> cargo build --release (lameduck)" >&2
    (cd "$root" && cargo build --release --quiet)
    export BINS="main=${CARGO_TARGET_DIR:-$root/target}/release/lameduck"
fi

# memory_clients.py raises RLIMIT_NOFILE to what N needs (it knows N only once it has read the
# manifest); start from the hard limit so a non-root run gets all it may have.
ulimit -n "$(ulimit -Hn)"
exec python3 "$benches/memory_clients.py"
