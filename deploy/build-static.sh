#!/usr/bin/env bash
# Builds the static binary the image ships, and prints its absolute path and its size in bytes.
#
#   deploy/build-static.sh          # what the Dockerfile ships: stable compiler, unwinding panics
#   deploy/build-static.sh --tiny   # the smallest: nightly, panics abort at once
#
# Both link musl statically (static-pie: no dynamic loader, no shared library) and rebuild std
# from its source with the release profile instead of linking the prebuilt one, so that std's
# optional parts can be left out. The prebuilt std carries the backtrace symbolizer (gimli,
# addr2line, miniz_oxide, rustc-demangle: code that only runs to print a symbolized backtrace
# after a panic with RUST_BACKTRACE set), and a static binary's text is what its idle RSS is
# made of (the kernel maps file pages 64 KiB around every touched one).
# Measured on rustc 1.95.0: 635,440 bytes and 572-636 KiB idle with the prebuilt std, 415,952
# bytes and 440-448 KiB idle rebuilt (README, "Deploy").
#
# The default keeps everything a panic does: the message, unwinding, and the Drop that removes
# the liveness file. Only RUST_BACKTRACE has nothing to print. It uses the stable compiler:
# `-Zbuild-std` is a Cargo interface that is not stable yet, and RUSTC_BOOTSTRAP=1 lets a
# release toolchain accept it (as the Linux kernel's Rust build does); the compiler and the
# std source are the released ones.
#
# --tiny also gives up unwinding (`-Cpanic=immediate-abort`, nightly only): a panic kills the
# process at once, without its message and without removing the liveness file (the container
# restarts anyway, and the next start replaces the file).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
toolchain=()   # `cargo +nightly` / `rustc +nightly`; empty: the default (stable) toolchain
rustup_for=()  # the same choice, as rustup spells it
case "${1:-}" in
--tiny)
    toolchain=(+nightly)
    rustup_for=(--toolchain nightly)
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        rustup toolchain install nightly --profile minimal >&2
    fi
    export RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort"
    std=(-Z "build-std=std,panic_abort")
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/tiny}"
    ;;
"")
    export RUSTC_BOOTSTRAP=1
    std=(-Z "build-std=std,panic_unwind" -Z build-std-features=panic-unwind)
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/static}"
    ;;
*)
    echo "usage: deploy/build-static.sh [--tiny]" >&2
    exit 2
    ;;
esac

# std's source (the rust-src component) and the musl target's C runtime objects.
sysroot="$(rustc "${toolchain[@]}" --print sysroot)"
[[ -d "$sysroot/lib/rustlib/src/rust/library" ]] || rustup component add rust-src "${rustup_for[@]}" >&2
[[ -d "$sysroot/lib/rustlib/$target" ]] || rustup target add "$target" "${rustup_for[@]}" >&2

cargo "${toolchain[@]}" build --release --locked --bin lameduck "${std[@]}" --target "$target" >&2
bin="$(realpath "$CARGO_TARGET_DIR/$target/release/lameduck")"
echo "$bin $(stat -c %s "$bin")"
