#!/usr/bin/env bash
# Runs c-tests/on_likwid.c through our library against Debian's likwid-accessD and against
# ours, on register-store files as /dev/cpu/N/msr and the host CPU simulated (host-cpu.sh says why) in a
# private mount namespace. Needs root. usage: c-tests/on_likwid.sh TEST_BINARY OUR_DAEMON (exit 77 = skipped)
set -euo pipefail
bin=$1 ours=$2 likwid=/usr/sbin/likwid-accessD
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "SKIP: needs root and unshare"; exit 77; }
[ -x $likwid ] || { echo "SKIP: Debian's likwid is not installed (apt-get install likwid)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source c-tests/host-cpu.sh
host_cpu || { echo "SKIP: no built-in table for this host's CPU, which Debian's daemon would serve"; exit 77; }
export LIKWID_TEST_VENDOR=$host_vendor
target/release/likwid-access sim "$tmp/m" --cpu "$host_sim" --cpus 2 >/dev/null
unshare -m --propagation private bash -euc '
    tmp=$1 bin=$2 likwid=$3 ours=$4
    source "${5}"
    private_dev "$tmp" 2
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    echo "== against Debian likwid-accessD"
    LIKWID_ACCESSD=$likwid LIKWID_TEST_STRIDE=1 "$bin"
    for cpu in 0 1; do truncate -s 0 /dev/cpu/$cpu/msr; truncate -s 32G /dev/cpu/$cpu/msr; done
    echo "== against ours"
    LIKWID_ACCESSD=$ours LIKWID_TEST_STRIDE=8 "$bin"
' on_likwid "$tmp" "$(realpath "$bin")" "$likwid" "$(realpath "$ours")" "$(realpath c-tests/private-dev.sh)"
