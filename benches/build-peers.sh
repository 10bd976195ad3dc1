#!/usr/bin/env bash
# benches/build-peers.sh: builds the peer servers that compare.sh and inflight.sh run, into
# benches/peers/target/release: the Rust peers (their own manifest and target dir, never part of
# the root crate's build) and Go + chi (offline, against Debian's golang-go and
# golang-github-go-chi-chi-dev; skipped with a message when they are missing, so the caller can
# leave go-chi out).
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
