#!/usr/bin/env bash
# The daemon started as LIKWID starts it (no arguments, empty environment, real paths), in a
# private mount namespace whose /dev is a scratch tmpfs: register-store files as
# /dev/cpu/N/msr and a datagram socket at /dev/log that records what the daemon logs.
# usage: c-tests/compat.sh CLIENT DAEMON   (exit 77 = skipped). Needs root.
set -euo pipefail
client=$1 daemon=$2
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: needs root, unshare and python3 for a private /dev"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/likwid-access sim "$tmp/m" --cpu zen4 --cpus 2 >/dev/null
unshare -m --propagation private bash -euc '
    tmp=$1 client=$2 daemon=$3 sink=$4
    source "$5"
    private_dev "$tmp" 2
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    python3 "$sink" /dev/log "$tmp/syslog" "$tmp/ready" &
    sink_pid=$!
    for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.05; done
    rc=0
    "$client" "$daemon" || rc=$?
    sleep 0.2
    kill $sink_pid
    exit $rc
' compat "$tmp" "$(realpath "$client")" "$(realpath "$daemon")" "$(realpath c-tests/syslog_sink.py)" \
    "$(realpath c-tests/private-dev.sh)"
fail=0
expect_log() {
    if ! grep -Eq "$1" "$tmp/syslog"; then echo "FAIL syslog: no record matching /$1/"; fail=1; fi
}
# glibc's syslog format: <PRI>TIMESTAMP ident[pid]: message; LOG_USER|LOG_WARNING is 12.
expect_log '^<12>.*likwid-accessD\[[0-9]+\]: denied write: uid=0 pid=[0-9]+ cpu=0 device=0 reg=0xc0010010$'
expect_log 'likwid-accessD\[[0-9]+\]: denied read: uid=0 pid=[0-9]+ cpu=0 device=0 reg=0xc0000080$'
expect_log 'likwid-accessD\[[0-9]+\]: no such cpu or device in read: uid=0 pid=[0-9]+ cpu=4294967295 device=0'
expect_log 'likwid-accessD\[[0-9]+\]: unknown request type 77 from uid=0'
if [ $fail != 0 ]; then echo "--- recorded syslog:"; cat "$tmp/syslog"; exit 1; fi
echo "syslog: denial records present"
