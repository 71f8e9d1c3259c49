#!/usr/bin/env bash
# make bench: ours vs Debian's likwid-accessD vs a direct pread, in one run. As root it builds a
# private /dev/cpu of register-store files and a Zen 3 /proc/cpuinfo (a CPU both daemons serve)
# in a mount namespace; without root or without LIKWID it measures ours and the floor only,
# and says loudly that the LIKWID column was skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude bench/bench.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/bench"
"$rel/likwid-access" sim "$tmp/m" --cpu zen3 --cpus 2 >/dev/null
likwid=/usr/sbin/likwid-accessD
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || [ ! -x $likwid ]; then
    echo "LIKWID column SKIPPED: needs root, unshare and Debian's $likwid (apt-get install likwid)." >&2
    LIKWID_ACCESS_ROOT=$tmp/m "$tmp/bench" "$tmp/m/dev/cpu/0/msr" "$rel/likwid-accessD"
    exit 0
fi
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "LIKWID: $(dpkg-query -W -f='${Package} ${Version}' likwid 2>/dev/null || echo unknown)"
echo
unshare -m --propagation private bash -euc '
    tmp=$1
    source "${4}"
    private_dev "$tmp" 2
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    "$tmp/bench" /dev/cpu/0/msr "$2" "$3"
' bench "$tmp" "$rel/likwid-accessD" "$likwid" "$(realpath c-tests/private-dev.sh)"
