#!/usr/bin/env bash
# make demo: build the demo against the header, simulate a Zen 4 machine, run it.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude c-tests/demo.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/demo"
"$rel/likwid-access" sim "$tmp/machine" --cpu zen4 --cpus 4
LIKWID_ACCESS_ROOT=$tmp/machine LIKWID_ACCESSD=$rel/likwid-accessD "$tmp/demo"
echo "register file of cpu 3, PERF_CTR0 at byte offset 8*0xC0010201:"
od -A x -t u8 -j $((8 * 0xC0010201)) -N 8 "$tmp/machine/dev/cpu/3/msr"
