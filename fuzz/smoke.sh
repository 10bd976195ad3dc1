#!/usr/bin/env bash
# Fuzz smoke run for CI: builds both cargo-fuzz targets and runs each for a short time
# (FUZZ_SECONDS per target, default 30, so 60 s of fuzzing in all), starting from the seeds in
# fuzz/seeds/<target> plus whatever corpus earlier runs left in fuzz/corpus/<target>.
# A crash fails the script; libFuzzer saves the input under fuzz/artifacts/<target>/. Turn it
# into a regression test (a codec unit test or a tests/malformed.rs case, with a comment saying
# so) and, once fixed, add the input to fuzz/seeds/<target>/ so every later run replays it.
#
# Needs the nightly toolchain (libFuzzer and the sanitizers are nightly-only) and cargo-fuzz;
# installs both when missing.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
targets=(codec session)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# Build first, so the time limit is spent fuzzing, not compiling.
cargo +nightly fuzz build

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    echo "=== fuzz $target for ${seconds}s"
    status=0
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -dict=http.dict -max_len=4096 -max_total_time="$seconds" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))' "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    rm -f "$log"
done
