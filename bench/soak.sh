#!/usr/bin/env bash
# make soak: bench/soak.c for MILLIONS (default 10) million requests on a simulated zen4.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude bench/soak.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/soak"
"$rel/likwid-access" sim "$tmp/m" --cpu zen4 --cpus 8 >/dev/null
LIKWID_ACCESS_ROOT=$tmp/m LIKWID_ACCESSD=$rel/likwid-accessD "$tmp/soak" "${1:-10}"
