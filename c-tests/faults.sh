#!/usr/bin/env bash
# The daemon's only log channel, /dev/log, under three conditions, in a private mount namespace
# whose /dev is a scratch tmpfs: a recording sink (the refusals of test_rlimits and the denials
# of test_denied must be logged there), a socket whose queue is full and never read, and no
# socket at all. Serving must go on, with every check of both tests passing, in all three.
# usage: c-tests/faults.sh BUILD_DIR DAEMON TOOL   (exit 77 = skipped). Needs root.
set -euo pipefail
build=$1 daemon=$2 tool=$3
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v python3 >/dev/null; then
    echo "SKIP: needs root, unshare and python3 for a private /dev/log"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unshare -m --propagation private bash -euc '
    tmp=$1 build=$2 daemon=$3 tool=$4 sink=$5
    source "$6"
    private_dev "$tmp" 0
    run() {
        rm -rf "$tmp/m"
        "$tool" sim "$tmp/m" --cpu zen4 --cpus 8 >/dev/null
        local t0=$SECONDS
        LIKWID_ACCESS_ROOT=$tmp/m LIKWID_ACCESSD=$daemon timeout -k 5 60 "$build/$1" >"$tmp/out" 2>&1 ||
            { cat "$tmp/out"; echo "FAIL $1 with /dev/log $2"; exit 1; }
        echo "$1 with /dev/log $2: passed in $((SECONDS - t0)) s"
    }
    await() { for _ in $(seq 100); do [ -e "$tmp/ready" ] && return; sleep 0.05; done; echo "no sink"; exit 1; }

    python3 "$sink" /dev/log "$tmp/syslog" "$tmp/ready" & sink_pid=$!
    await
    run test_rlimits recording
    run test_denied recording
    sleep 0.2
    kill $sink_pid; wait $sink_pid 2>/dev/null || true; rm -f /dev/log "$tmp/ready"
    for want in "no memory for a batch of 65536 requests" "denied write: uid=0 pid=[0-9]+ cpu=[0-9]+ device=0 reg=0xc0010010"; do
        grep -Eq "$want" "$tmp/syslog" || { cat "$tmp/syslog"; echo "FAIL: nothing logged matching /$want/"; exit 1; }
    done
    echo "syslog: the refused batch and the denials were logged"

    python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(\"/dev/log\")
c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); c.setblocking(False)
try:
    while True: c.sendto(b\"<14>filler\", \"/dev/log\")
except BlockingIOError:
    pass
open(sys.argv[1], \"w\").close()
time.sleep(3600)
" "$tmp/ready" & full_pid=$!
    await
    run test_denied "full, never read"
    run test_rlimits "full, never read"
    kill $full_pid; wait $full_pid 2>/dev/null || true; rm -f /dev/log

    run test_denied absent
    run test_rlimits absent
' faults "$tmp" "$(realpath "$build")" "$(realpath "$daemon")" "$(realpath "$tool")" \
    "$(realpath c-tests/syslog_sink.py)" "$(realpath c-tests/private-dev.sh)"
