#!/usr/bin/env bash
# benches/build-peers.sh: builds the peer servers that compare.sh, inflight.sh, large.sh and
# slow_readers.sh run, into benches/peers/target/release: the Rust peers (their own manifest and
# target dir, never part of the root crate's build), the C floor (gcc), and Go + chi (offline,
# against Debian's golang-go and golang-github-go-chi-chi-dev). The floor and Go + chi are skipped
# with a message when their compiler is missing, so the caller can leave them out.
set -euo pipefail

peers="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/peers"
out="$peers/target/release"

echo "==> cargo build --release (benches/peers)" >&2
env -u CARGO_TARGET_DIR cargo build --release --quiet --manifest-path "$peers/Cargo.toml"

if [[ ! -x "$out/peer-go-chi" || "$peers/go/main.go" -nt "$out/peer-go-chi" ]]; then
    if command -v go >/dev/null && [[ -d /usr/share/gocode/src/github.com/go-chi/chi ]]; then
        echo "==> go build (benches/peers/go)" >&2
        (cd "$peers/go" && GO111MODULE=off GOPATH=/usr/share/gocode \
            GOCACHE="${GOCACHE:-$peers/target/go-cache}" go build -o "$out/peer-go-chi" main.go)
    else
        rm -f "$out/peer-go-chi"  # never run a peer older than its source
        echo "build-peers.sh: no Go toolchain or chi: no peer-go-chi" >&2
    fi
fi

if [[ ! -x "$out/floor" || "$peers/floor/floor.c" -nt "$out/floor" ]]; then
    if command -v gcc >/dev/null; then
        echo "==> gcc floor.c" >&2
        gcc -O2 -Wall -o "$out/floor" "$peers/floor/floor.c"
    else
        rm -f "$out/floor"
        echo "build-peers.sh: no gcc: no floor" >&2
    fi
fi
