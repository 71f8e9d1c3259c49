#!/usr/bin/env bash
# Service mode before/after: `bench/service-ab.sh BEFORE_DAEMON [ROUNDS]` starts the service of
# BEFORE_DAEMON (a likwid-accessD built from an earlier commit) and of this tree's in turn, ROUNDS
# times (3), in one private mount namespace (a simulated 2-CPU machine on /dev/cpu, tmpfs on /run
# and /etc/likwid-access, `user root read-write`), and runs the same client programs against each
# with the same library (bench/service-ab.c): connects back to back, then single reads beside a
# spawned daemon with the client on CPU 0 and unpinned; connects 100 ms apart too (after idling
# every wake-up is slower on a VM). Needs root. About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
rel=$PWD/target/release
before=$(realpath "$1") rounds=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude bench/service-ab.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/ab"
"$rel/likwid-access" sim "$tmp/m" --cpu skx --cpus 2 >/dev/null
cp "$before" "$tmp/before"
cp "$rel/likwid-accessD" "$tmp/after"
unshare -m --propagation private bash -euc '
    tmp=$1 rel=$2 rounds=$3
    source bench/service-ns.sh
    service_namespace "$tmp"
    for r in $(seq "$rounds"); do
        for who in before after; do
            "$tmp/$who" --service 2>/dev/null & service=$!
            for _ in $(seq 250); do "$rel/likwid-access" service status >/dev/null 2>&1 && break; sleep 0.01; done
            echo "round $r, $who: $("$tmp/ab" connect 200)"
            echo "round $r, $who: $("$tmp/ab" connect 20 100)"
            echo "round $r, $who: $("$tmp/ab" ab 20 500 0 "$rel/likwid-accessD")"
            echo "round $r, $who: $("$tmp/ab" ab 20 500 -1 "$rel/likwid-accessD")"
            kill $service
            wait $service || true
        done
    done
' service-ab "$tmp" "$rel" "$rounds"
