#!/usr/bin/env bash
# Runs c-tests/differential.c against Debian's likwid-accessD and ours, on register-store files
# as /dev/cpu/N/msr and a Zen 3 /proc/cpuinfo (a CPU both serve), with a private /run for the
# lock file, in a mount namespace. Prints the table (README "Compatibility"). Needs root.
# usage: c-tests/differential.sh CLIENT OUR_DAEMON   (exit 77 = skipped)
set -euo pipefail
client=$1 ours=$2 likwid=/usr/sbin/likwid-accessD
[ "$(id -u)" = 0 ] && command -v unshare >/dev/null || { echo "SKIP: needs root and unshare"; exit 77; }
[ -x $likwid ] || { echo "SKIP: Debian's likwid is not installed (apt-get install likwid)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/likwid-access sim "$tmp/m" --cpu zen3 --cpus 2 >/dev/null
unshare -m --propagation private bash -euc '
    tmp=$1
    source "${5}"
    private_dev "$tmp" 2
    mount -t tmpfs -o mode=0755 none /run
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    "$2" "$3" "$4"
' differential "$tmp" "$(realpath "$client")" "$likwid" "$(realpath "$ours")" "$(realpath c-tests/private-dev.sh)"
