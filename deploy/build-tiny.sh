#!/usr/bin/env bash
# Builds the smallest lameduck: static musl, std rebuilt from source with panics that abort
# immediately (no unwinder, no backtrace printer, no panic messages). Needs nightly, because
# `-Zbuild-std` and the `immediate-abort` panic strategy are nightly-only.
#
#   deploy/build-tiny.sh            # prints the path and size of the binary
#
# Why not the default: a stable build keeps unwinding, so a panic still runs the liveness file's
# Drop and prints its message; this one trades that for size (a panic here kills the process
# at once, its container restarts, and the stale liveness file is replaced by the next start).
# Measured on rustc 1.97.0-nightly (2026-05-19): 170,088 bytes at opt-level 3, 141,416 at "s",
# against 525 KiB / 485 KiB for the stable build.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
rustup component add rust-src --toolchain nightly >/dev/null
rustup target add "$target" --toolchain nightly >/dev/null

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tiny}"
RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
    cargo +nightly build --release --locked -Z build-std=std,panic_abort --target "$target" >&2
bin="$CARGO_TARGET_DIR/$target/release/lameduck"
echo "$bin $(stat -c %s "$bin")"
