#!/usr/bin/env bash
# Runs c-tests/differential.c against Debian's likwid-accessD and ours, on register-store files
# as /dev/cpu/N/msr and the host CPU simulated (host-cpu.sh says why), with a private /run for the
# lock file, in a mount namespace. Prints the table (README "Compatibility"). Needs root.
# usage: c-tests/differential.sh CLIENT OUR_DAEMON   (exit 77 = skipped)
set -euo pipefail
client=$1 ours=$2 likwid=/usr/sbin/likwid-accessD
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "SKIP: needs root and unshare"; exit 77; }
[ -x $likwid ] || { echo "SKIP: Debian's likwid is not installed (apt-get install likwid)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source c-tests/host-cpu.sh
host_cpu || { echo "SKIP: no built-in table for this host's CPU, which Debian's daemon would serve"; exit 77; }
export LIKWID_TEST_VENDOR=$host_vendor
target/release/likwid-access sim "$tmp/m" --cpu "$host_sim" --cpus 2 >/dev/null
unshare -m --propagation private bash -euc '
    tmp=$1
    source "${5}"
    private_dev "$tmp" 2
    mount -t tmpfs -o mode=0755 none /run
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    "$2" "$3" "$4"
' differential "$tmp" "$(realpath "$client")" "$likwid" "$(realpath "$ours")" "$(realpath c-tests/private-dev.sh)"
