#!/usr/bin/env bash
# Service mode in instructions: `bench/service-cg.sh [DAEMON...]` (this tree's likwid-accessD when
# none is given) runs each DAEMON's service under callgrind in a private mount namespace (a
# simulated 2-CPU Skylake-SP on /dev/cpu, tmpfs on /run and /etc/likwid-access, `user root
# read-write`) and prints the service's user-space instructions per single read, per single
# masked write and per connection (HPMinit, HPMaddThread, one read, HPMfinalize), each as the
# difference of a short and a long run (start-up and shutdown cancel out), beside the same DAEMON
# spawned by the library for the reads and writes. Stable on a shared machine, unlike times.
# Needs root and valgrind. About 1 minute per daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
command -v valgrind >/dev/null || { echo "SKIP: needs valgrind" >&2; exit 77; }
rel=$PWD/target/release
[ $# -gt 0 ] || set -- "$rel/likwid-accessD"
tmp=$(mktemp -d)
# SERVICE_CG_KEEP=DIR keeps the callgrind profiles there (for callgrind_annotate).
trap '[ -n "${SERVICE_CG_KEEP:-}" ] && cp -r "$tmp" "$SERVICE_CG_KEEP"; rm -rf "$tmp"' EXIT
for prog in bench service-ab; do
    cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude "bench/$prog.c" -L"$rel" -llikwid_access \
        -Wl,-rpath,"$rel" -o "$tmp/$prog"
done
"$rel/likwid-access" sim "$tmp/m" --cpu skx --cpus 2 >/dev/null
daemons=()
for d in "$@"; do
    cp "$d" "$tmp/d${#daemons[@]}"
    daemons+=("$d")
done
unshare -m --propagation private bash -euc '
    tmp=$1 rel=$2 count=$3
    source bench/service-ns.sh
    service_namespace "$tmp"
    unset LIKWID_ACCESSD LIKWID_ACCESS_ROOT
    total() { sed -n "s/^\(summary\|totals\): *\([0-9]*\).*/\2/p" "$1" | head -n1; }
    served() { # DAEMON OUT COMMAND...: the service of DAEMON under callgrind while COMMAND runs
        local daemon=$1 out=$2 service
        shift 2
        valgrind --tool=callgrind --callgrind-out-file="$out" -q "$daemon" --service 2>/dev/null & service=$!
        for _ in $(seq 1000); do "$rel/likwid-access" service status >/dev/null 2>&1 && break; sleep 0.02; done
        "$@" >/dev/null
        kill $service
        wait $service || true
    }
    spawned() { # DAEMON DIR COMMAND...: COMMAND with DAEMON spawned by the library, both under callgrind
        local daemon=$1 dir=$2
        shift 2
        mkdir "$dir"
        LIKWID_ACCESSD=$daemon valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$dir/%p" -q "$@"
        grep -l "^cmd:.*/d[0-9]" "$dir"/* | head -n1
    }
    for ((i = 0; i < count; i++)); do
        d=$tmp/d$i
        for n in 2 22; do
            served "$d" "$tmp/r$i.$n" "$tmp/bench" cgs 0xC1 $n
            served "$d" "$tmp/w$i.$n" "$tmp/bench" cgw 0x38F $n
            served "$d" "$tmp/c$i.$n" "$tmp/service-ab" connect $((n * 5))
            cp "$(spawned "$d" "$tmp/sr$i.$n" "$tmp/bench" cgs 0xC1 $n)" "$tmp/sr$i.$n.out"
            cp "$(spawned "$d" "$tmp/sw$i.$n" "$tmp/bench" cgw 0x38F $n)" "$tmp/sw$i.$n.out"
        done
        per() { echo $((($(total "$2") - $(total "$1")) / $3)); }
        echo "$i: service per single read $(per "$tmp/r$i.2" "$tmp/r$i.22" 20000)," \
            "per masked write $(per "$tmp/w$i.2" "$tmp/w$i.22" 20000)," \
            "per connection $(per "$tmp/c$i.2" "$tmp/c$i.22" 100);" \
            "spawned daemon per single read $(per "$tmp/sr$i.2.out" "$tmp/sr$i.22.out" 20000)," \
            "per masked write $(per "$tmp/sw$i.2.out" "$tmp/sw$i.22.out" 20000)"
    done
' service-cg "$tmp" "$rel" "${#daemons[@]}" | while read -r line; do
    echo "${daemons[${line%%:*}]}${line#*:}"
done
