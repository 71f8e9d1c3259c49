#!/usr/bin/env bash
# make fuzz: each cargo-fuzz target for FUZZ_SECONDS (default 600), one at a time at nice 19,
# then the committed corpus fuzz/corpus/TARGET becomes its seeds plus a minimal covering set
# (replayed by tests/fuzz_corpus.rs in every `cargo test`). Crashes land in fuzz/artifacts/.
# Needs a nightly toolchain (cargo-fuzz builds with -Z flags) and cargo-fuzz:
#   rustup toolchain install nightly && cargo +nightly install cargo-fuzz --locked
# usage: fuzz/run.sh [TARGET...]   (wire greeting parsers session)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wire greeting parsers session)
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "make fuzz needs nightly Rust and cargo-fuzz:" >&2
    echo "  rustup toolchain install nightly && cargo +nightly install cargo-fuzz --locked" >&2
    exit 2
fi
LIKWID_FUZZ_DIR=$(mktemp -d)
export LIKWID_FUZZ_DIR
trap 'rm -rf "$LIKWID_FUZZ_DIR"' EXIT
# No sanitizer: the harnessed code is safe Rust; debug assertions (overflow checks) stay on.
fuzz=(nice -n 19 cargo +nightly fuzz run --sanitizer none)
failed=0
for t in "${targets[@]}"; do
    work=target/fuzz-corpus/$t
    mkdir -p "$work" "target/fuzz-logs"
    log=target/fuzz-logs/$t.log
    rc=0
    "${fuzz[@]}" "$t" "$work" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=4096 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1)
    echo "fuzz $t: ${runs:-?} executions in ${secs} s, $cov, exit $rc"
    if [ $rc != 0 ]; then
        failed=1
        grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -n5
    fi
    # The committed corpus: named seeds and regressions (seed-*, crash-*), plus the smallest
    # set of inputs that covers what the run reached.
    min=$(mktemp -d -p target)
    "${fuzz[@]}" "$t" "$min" "fuzz/corpus/$t" "$work" -- -merge=1 -max_len=4096 >>"$log" 2>&1
    find "fuzz/corpus/$t" -type f ! -name 'seed-*' ! -name 'crash-*' -delete
    cp "$min"/* "fuzz/corpus/$t/" 2>/dev/null || true
    rm -rf "$min"
    echo "fuzz $t: $(find "fuzz/corpus/$t" -type f | wc -l) inputs in fuzz/corpus/$t"
done
exit $failed
