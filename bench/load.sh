#!/usr/bin/env bash
# make load: bench/load.c on a simulated zen4 with 2 CPUs per process. As root it runs in a
# private mount namespace (register-store files as /dev/cpu, the sim's /proc/cpuinfo, a private
# /tmp for the LIKWID sockets) so the raw LIKWID clients can start the daemon as LIKWID does
# (no arguments, no environment); without root it runs without them and says so.
# usage: bench/load.sh [PROCS THREADS PAIRS RAW [MAX_P99_MS]]   (default 64 8 200 16)
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
procs=${1:-64} threads=${2:-8} pairs=${3:-200} raw=${4:-16} max_p99=${5:-0}
ncpus=$((2 * procs > raw ? 2 * procs : raw))
((ncpus >= 8)) || ncpus=8
mkdir -p target && tmp=$(mktemp -d -p "$PWD/target" load.XXXXXX)  # not under /tmp: the run hides it
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -pthread -Iinclude bench/load.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/load"
"$rel/likwid-access" sim "$tmp/m" --cpu zen4 --cpus "$ncpus" >/dev/null
export LIKWID_ACCESSD=$rel/likwid-accessD
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
    echo "load: raw LIKWID clients SKIPPED (need root and unshare for a private /dev/cpu)" >&2
    LIKWID_ACCESS_ROOT=$tmp/m exec "$tmp/load" "$procs" "$threads" "$pairs" 0 "$LIKWID_ACCESSD" "$max_p99"
fi
unshare -m --propagation private bash -euc '
    tmp=$1; shift
    source "$1"; shift
    private_dev "$tmp" "$1"; shift
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    mount -t tmpfs -o mode=1777 none /tmp
    "$tmp/load" "$@"
    left=$(find /tmp -mindepth 1 | head -5)
    if [ -n "$left" ]; then echo "FAIL: left in /tmp: $left"; exit 1; fi
' load "$tmp" "$(realpath c-tests/private-dev.sh)" "$ncpus" "$procs" "$threads" "$pairs" "$raw" "$LIKWID_ACCESSD" "$max_p99"
