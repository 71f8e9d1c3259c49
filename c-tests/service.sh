#!/usr/bin/env bash
# Service mode (likwid-accessD --service) as sites run it: started by root, no setuid file,
# three unprivileged users at once under service.conf, a client confined to a cgroup cpuset,
# two sessions on one CPU, the relay's hand-over, admin status/reset, SIGTERM and a SIGKILL
# with a restart. Runs in a private mount namespace (tmpfs on /run and /etc/likwid-access, a
# recorded /dev/log), on a simulated machine. Needs root.
# usage: c-tests/service.sh   (from the repo root; exit 77 = skipped)
set -euo pipefail
rel=$PWD/target/release
for tool in setpriv unshare python3 useradd cc; do
    command -v $tool >/dev/null || { echo "SKIP: needs $tool"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run the service"; exit 77; }
for u in likwid-t1 likwid-t2 likwid-t3; do
    id -u $u >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin $u
done
u1=$(id -u likwid-t1) g1=$(id -g likwid-t1) u2=$(id -u likwid-t2) g2=$(id -g likwid-t2)
u3=$(id -u likwid-t3) g3=$(id -g likwid-t3)

# The users run Python too: the system's, not a per-user shim of root's.
py=$(command -v /usr/bin/python3 || command -v python3)
inst=$(mktemp -d /tmp/likwid-access-service.XXXXXX)
made_etc=
cg_base=
cg_enabled=
cleanup() {
    if [ -n "$cg_base" ]; then
        rmdir "$cg_base/job_4242" "$cg_base" 2>/dev/null || true
    fi
    # The controller this test switched on at the v2 root goes off again (if nothing else uses it).
    [ -n "$cg_enabled" ] && { echo -cpuset >"$cg_enabled/cgroup.subtree_control" 2>/dev/null || true; }
    [ -n "$made_etc" ] && rmdir /etc/likwid-access 2>/dev/null
    rm -rf "$inst"
}
trap cleanup EXIT
chmod 0755 "$inst"
mkdir -m 0755 "$inst/lib"
mkdir -m 0777 "$inst/sync"
cp "$rel/liblikwid_access.so" "$inst/lib/liblikwid_access.so.0"
cp "$rel/likwid-access" "$rel/likwid-accessD" "$inst/"
cc -std=c11 -Wall -Wextra -Werror -pedantic -D_POSIX_C_SOURCE=200809L -Iinclude c-tests/service_client.c \
   -L"$rel" -llikwid_access -Wl,-rpath,"$inst/lib" -o "$inst/client"
cp c-tests/service_handover.py "$inst/"
chmod -R a+rX "$inst"
"$rel/likwid-access" sim "$inst/host" --cpu zen4 --cpus 2 >/dev/null
# The mount point must exist; /etc is the host's even in the namespace, so only an empty
# directory made here is removed again.
if [ ! -d /etc/likwid-access ]; then mkdir -m 0755 /etc/likwid-access; made_etc=1; fi

# A cpuset cgroup holding CPU 0 only, named like Slurm's (job_4242): v1 where the cpuset
# hierarchy is mounted, else v2 when its root offers the cpuset controller. Where neither can
# be made (a container without cgroup write access), the scope steps run unconfined.
make_cpuset() {
    local v1 v2
    v1=$(awk '/ - cgroup / && $NF ~ /(^|,)cpuset(,|$)/ { print $5; exit }' /proc/self/mountinfo)
    v2=$(awk '/ - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
    if [ -n "$v1" ]; then
        cg_base=$v1/likwid-svc-$$
        mkdir "$cg_base" "$cg_base/job_4242" || return 1
        for d in "$cg_base" "$cg_base/job_4242"; do
            cat "$v1/cpuset.mems" >"$d/cpuset.mems" && echo 0 >"$d/cpuset.cpus" || return 1
        done
    elif [ -n "$v2" ] && grep -qw cpuset "$v2/cgroup.controllers"; then
        if ! grep -qw cpuset "$v2/cgroup.subtree_control"; then
            echo +cpuset >"$v2/cgroup.subtree_control" || return 1
            cg_enabled=$v2
        fi
        cg_base=$v2/likwid-svc-$$
        mkdir "$cg_base" && echo +cpuset >"$cg_base/cgroup.subtree_control" && mkdir "$cg_base/job_4242" \
            && echo 0 >"$cg_base/job_4242/cpuset.cpus" || return 1
    else
        return 1
    fi
}
if ! make_cpuset; then
    echo "no cpuset cgroup could be made here: the scope steps run unconfined"
    cleanup_cg=$cg_base
    cg_base=
    [ -n "$cleanup_cg" ] && { rmdir "$cleanup_cg/job_4242" "$cleanup_cg" 2>/dev/null || true; }
fi

unshare -m --propagation private bash -euc '
    inst=$1 u1=$2 g1=$3 u2=$4 g2=$5 u3=$6 g3=$7 sink=$8 cg=${10} py=${11}
    source "$9"
    private_dev "$inst" 2
    mount -t tmpfs -o mode=0755 none /run
    mount -t tmpfs -o mode=0755 none /etc/likwid-access
    python3 "$sink" /dev/log "$inst/syslog" "$inst/ready" & sink_pid=$!
    for _ in $(seq 100); do [ -e "$inst/ready" ] && break; sleep 0.05; done
    as_t1="setpriv --reuid=$u1 --regid=$g1 --clear-groups"
    as_t2="setpriv --reuid=$u2 --regid=$g2 --groups=4242"
    as_t3="setpriv --reuid=$u3 --regid=$g3 --clear-groups"
    client="env -u LIKWID_ACCESSD -u LIKWID_ACCESS_ROOT $inst/client"
    d=$inst/sync
    fail=0
    ok() { echo "PASS $1"; }
    bad() { echo "FAIL $1"; fail=1; }
    reg() { od -A n -t u8 -j $((8 * $2)) -N 8 "$inst/host/dev/cpu/$1/msr" | tr -d " "; }
    setreg() { python3 -c "import os, sys; f = os.open(sys.argv[1], os.O_WRONLY); os.pwrite(f, int(sys.argv[3]).to_bytes(8, \"little\"), 8 * int(sys.argv[2]))" \
               "$inst/host/dev/cpu/$1/msr" "$2" "$3"; }
    waitfor() { for _ in $(seq 500); do [ -e "$1" ] && return 0; sleep 0.02; done; echo "timed out waiting for $1"; return 1; }
    CTR0=$((0xC0010201))
    start_service() {
        LIKWID_ACCESS_ROOT=$inst/host "$inst/likwid-accessD" --service 2>>"$inst/service.err" & spid=$!
        # Ready once it answers (a killed service leaves its socket file behind).
        for _ in $(seq 250); do "$inst/likwid-access" service status >/dev/null 2>&1 && return 0; sleep 0.02; done
        echo "service did not start:"; cat "$inst/service.err"; return 1
    }
    cat >/etc/likwid-access/service.conf <<CONF
# t1 measures; members of group 4242 (t2 gets it as a supplementary group) only read.
user likwid-t1 read-write
group 4242 read
default none
CONF
    chmod 0644 /etc/likwid-access/service.conf

    # 0. Start-up: a service.conf root does not control, or cannot be read, stops it; then the
    #    socket for everyone and the one capability kept.
    chmod 0664 /etc/likwid-access/service.conf
    LIKWID_ACCESS_ROOT=$inst/host "$inst/likwid-accessD" --service 2>"$inst/refused.err" && bad "started on a group-writable service.conf" \
        || { grep -q "service.conf is writable by group or others (chmod go-w" "$inst/refused.err" \
             && ok "a group-writable service.conf stops the start, naming the fix"; } || { cat "$inst/refused.err"; bad "group-writable config"; }
    chmod 0644 /etc/likwid-access/service.conf
    cp /etc/likwid-access/service.conf "$inst/service.conf.good"
    echo "usr likwid-t2 read" >>/etc/likwid-access/service.conf
    LIKWID_ACCESS_ROOT=$inst/host "$inst/likwid-accessD" --service 2>"$inst/refused.err" && bad "started on a broken service.conf" \
        || { grep -q "service.conf: line 5: unknown keyword .usr." "$inst/refused.err" \
             && ok "a syntax error stops the start, naming the line"; } || { cat "$inst/refused.err"; bad "broken config"; }
    cp "$inst/service.conf.good" /etc/likwid-access/service.conf
    [ ! -e /run/likwid-access/socket ] || bad "a refused start left a socket"
    start_service
    [ "$(stat -c "%U %a" /run/likwid-access/socket)" = "root 666" ] && ok "socket is root-owned 0666" \
        || bad "socket: $(stat -c "%U %a" /run/likwid-access/socket)"
    caps=$(awk "/^Cap(Eff|Prm|Bnd|Amb):/ {printf \"%s=%s \", \$1, \$2}" /proc/$spid/status)
    [ "$caps" = "CapPrm:=0000000000000000 CapEff:=0000000000000000 CapBnd:=0000000000000000 CapAmb:=0000000000000000 " ] \
        && ok "service keeps no capability, the bounding set empty too ($caps)" || bad "capabilities: $caps"

    # A connection that never says hello, open while everything below runs (checked in 4).
    $as_t2 $py -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\"); t = time.time(); s.settimeout(15)
sys.exit(0 if s.recv(1) == b\"\" and 4 <= time.time() - t <= 8 else 1)" & silent=$!
    # One user with 128 connections open gets no 129th (the cap per uid); the others are served.
    $as_t3 $py -c "
import socket, sys, time
held = []
for _ in range(128):
    s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\"); held.append(s)
time.sleep(0.5)
extra = socket.socket(socket.AF_UNIX); extra.connect(\"/run/likwid-access/socket\"); extra.settimeout(3); t = time.time()
try:
    closed = extra.recv(1) == b\"\"
except ConnectionResetError:
    closed = True
sys.exit(0 if closed and time.time() - t < 2 else 1)" & capped=$!

    # 1. Three users at once: read-write served, read-only refused writes, none refused.
    SERVICE_PID=$spid $as_t1 $client add 0 0 pid touch $d/t1 wait $d/t2 wait $d/t3 w 0 $CTR0 0x5551 0 \
        r 0 $CTR0 0 0x5551 b 0 $CTR0 0x5552 2000 0 touch $d/t1done wait $d/alldone fin >"$inst/t1.log" 2>&1 & p1=$!
    $as_t2 $client add 0 0 touch $d/t2 wait $d/t1 r 0 $CTR0 0 w 0 $CTR0 0x1 -1 b 0 $CTR0 0x1 10 1 touch $d/t2done wait $d/alldone fin \
        >"$inst/t2.log" 2>&1 & p2=$!
    $as_t3 $client add 0 -13 touch $d/t3 >"$inst/t3.log" 2>&1 & p3=$!
    waitfor $d/t1done && waitfor $d/t2done
    status=$("$inst/likwid-access" service status)
    echo "$status" | grep -Eq "^session [0-9]+ uid=$u1 pid=$p1 cpus=0 writes=2$" \
        && echo "$status" | grep -Eq "^session [0-9]+ uid=$u2 pid=[0-9]+ cpus=- writes=0$" \
        && ok "admin status lists both live sessions (uid, pid, owned CPUs, writes)" || { echo "$status"; bad "status"; }
    touch $d/alldone
    r1=0 r2=0 r3=0; wait $p1 || r1=$?; wait $p2 || r2=$?; wait $p3 || r3=$?
    [ $r1 = 0 ] && ok "likwid-t1 (read-write): write, read back and a batch of 2000 served; HPMdaemonPid is the service pid" \
        || { cat "$inst/t1.log"; bad "likwid-t1"; }
    [ $r2 = 0 ] && ok "likwid-t2 (read via supplementary group 4242): read served, write -EPERM (also in a batch)" \
        || { cat "$inst/t2.log"; bad "likwid-t2"; }
    [ $r3 = 0 ] && ok "likwid-t3 (none): session refused with -EACCES" || { cat "$inst/t3.log"; bad "likwid-t3"; }
    [ "$(reg 0 $CTR0)" = $((0x5552)) ] && ok "EXIT keeps what the session programmed" || bad "cpu 0 holds $(reg 0 $CTR0)"
    setreg 0 $CTR0 0

    # SIGHUP reloads service.conf: group 4242 loses its access.
    reloaded() { grep -c "SIGHUP: configuration reloaded" "$inst/syslog" || true; }
    before=$(reloaded)
    sed -i "s/^group 4242 read$/group 4242 none/" /etc/likwid-access/service.conf
    kill -HUP $spid
    for _ in $(seq 100); do [ "$(reloaded)" -gt "$before" ] && break; sleep 0.02; done
    $as_t2 $client add 0 -13 >"$inst/hup.log" 2>&1 && ok "SIGHUP reloads service.conf (group 4242 now none: -EACCES)" \
        || { cat "$inst/hup.log"; bad "SIGHUP reload"; }
    cp "$inst/service.conf.good" /etc/likwid-access/service.conf
    kill -HUP $spid
    for _ in $(seq 100); do [ "$(reloaded)" -gt $((before + 1)) ] && break; sleep 0.02; done

    # 2. Cpuset scope, a second writer on the same CPU, and a reset of the Slurm job.
    if [ -n "$cg" ]; then
        sh -c "echo \$\$ >$cg/job_4242/cgroup.procs && exec $as_t1 $client add 0 0 add 1 0 w 0 $CTR0 0x61 0 \
            w 1 $CTR0 0x62 -1 r 1 $CTR0 -1 touch $d/A1 wait $d/Areset r 0 $CTR0 -107" >"$inst/A.log" 2>&1 & pa=$!
    else
        echo "no cpuset cgroup on this machine: scope part runs unconfined"
        $as_t1 $client add 0 0 add 1 0 w 0 $CTR0 0x61 0 touch $d/A1 wait $d/Areset r 0 $CTR0 -107 >"$inst/A.log" 2>&1 & pa=$!
    fi
    waitfor $d/A1
    $as_t1 $client add 0 0 w 0 $CTR0 0x71 -16 touch $d/B1 wait $d/Bgo w 0 $CTR0 0x72 0 touch $d/B2 wait $d/Bend fin \
        >"$inst/B.log" 2>&1 & pb=$!
    waitfor $d/B1
    [ "$(reg 0 $CTR0)" = $((0x61)) ] && ok "the second session did not change cpu 0 (-EBUSY)" || bad "cpu 0 holds $(reg 0 $CTR0)"
    if [ -n "$cg" ]; then filter="--job 4242"; else filter="--uid $u1 --cpu 0"; fi
    out=$("$inst/likwid-access" service reset $filter) \
        && echo "$out" | grep -Eq "^ended session [0-9]+ uid=$u1 pid=$pa restored=1$" && [ $(echo "$out" | wc -l) = 1 ] \
        && ok "admin reset $filter ends exactly that session" || { echo "$out"; bad "reset $filter"; }
    [ "$(reg 0 $CTR0)" = 0 ] && ok "reset restored what the ended session changed" || bad "after reset cpu 0 holds $(reg 0 $CTR0)"
    touch $d/Areset $d/Bgo
    waitfor $d/B2
    [ "$(reg 0 $CTR0)" = $((0x72)) ] && ok "once the first session ended, the second writes cpu 0" || bad "cpu 0 holds $(reg 0 $CTR0)"
    touch $d/Bend
    ra=0 rb=0; wait $pa || ra=$?; wait $pb || rb=$?
    [ $ra = 0 ] && ok "confined client: cpu 0 written, cpu 1 -EPERM (write and read), -ENOTCONN after the reset" \
        || { cat "$inst/A.log"; bad "confined client"; }
    [ $rb = 0 ] && ok "second session: -EBUSY on cpu 0 while another session programs it, then served" \
        || { cat "$inst/B.log"; bad "second session"; }
    [ "$(reg 1 $CTR0)" = 0 ] && ok "cpu 1 outside the cpuset never written" || bad "cpu 1 holds $(reg 1 $CTR0)"
    setreg 0 $CTR0 0

    # 3. The relay hand-over (mode 2).
    $py "$inst/service_handover.py" match $u1 $g1 1 $CTR0 && ok "hand-over from the same uid: LIKWID records served" \
        || bad "hand-over (match)"
    for _ in $(seq 100); do [ "$(reg 1 $CTR0)" = 0 ] && break; sleep 0.02; done
    [ "$(reg 1 $CTR0)" = 0 ] && ok "handed-over client left without EXIT: register restored" || bad "cpu 1 holds $(reg 1 $CTR0)"
    $py "$inst/service_handover.py" mismatch $u1 $g1 1 $CTR0 && ok "hand-over of another uid socket refused" \
        || bad "hand-over (mismatch)"
    $py "$inst/service_handover.py" listener $u1 $g1 1 $CTR0 && ok "hand-over of a listening socket refused" \
        || bad "hand-over (listener)"

    # 4. Hostile connections: silence times out without holding anybody up; garbage and
    #    admin commands from a user are refused.
    # A session that floods requests and never reads a reply: its thread waits on its own socket.
    $as_t2 $py -c "
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\")
s.sendall(b\"LKAS\\x01\\x01\\x02\\x05\"); s.recv(32); s.setblocking(False)
record = struct.pack(\"=IIQiii4x\", 0, 0xC0010201, 0, 0, 0, 3)
try:
    for _ in range(1000000):
        s.send(record)
except BlockingIOError:
    pass
open(sys.argv[1], \"w\").close(); time.sleep(2)" $d/flooding & flood=$!
    waitfor $d/flooding
    t=$(date +%s%N)
    $as_t1 $client add 0 0 r 0 $CTR0 0 fin && [ $(( ($(date +%s%N) - t) / 1000000 )) -lt 1000 ] \
        && ok "a session is served at once while a silent connection and a flooding client that reads nothing are open" \
        || bad "served late or not at all"
    wait $flood || bad "flooding client"
    python3 -c "
import socket
s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\"); s.settimeout(5)
s.sendall(b\"GET / HTTP/1.0\\r\\n\")
try:
    assert s.recv(1) == b\"\"
except ConnectionResetError:
    pass" && ok "a garbage hello is closed" || bad "garbage hello"
    # Random records in a session and random hellos: answered or closed, never a crash. (As
    # likwid-t2: the hellos use up its share of the log, see ratelimit.rs.)
    $as_t2 $py -c "
import os, socket, struct
for _ in range(50):
    s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\"); s.settimeout(5)
    s.sendall(b\"LKAS\" + os.urandom(4)); s.close()
s = socket.socket(socket.AF_UNIX); s.connect(\"/run/likwid-access/socket\"); s.settimeout(5)
s.sendall(b\"LKAS\\x01\\x01\\x02\\x05\"); head = s.recv(32); s.recv(struct.unpack(\"=I\", head[:4])[0], socket.MSG_WAITALL)
for _ in range(2000):
    r = bytearray(os.urandom(32))
    if struct.unpack(\"=i\", r[20:24])[0] in (3, 0x4C410002):
        r[20:24] = struct.pack(\"=i\", 0)
    s.sendall(bytes(r))
    assert len(s.recv(32, socket.MSG_WAITALL)) == 32
s.sendall(struct.pack(\"=IIQiii4x\", 4000000000, 0, 0, 0, 0x4C410002, 0))
data = b\"\"
while True:
    chunk = s.recv(64)
    if not chunk:
        break
    data += chunk
assert len(data) == 32 and struct.unpack(\"=ii\", data[20:28]) == (0x4C410002, 1), data
" && "$inst/likwid-access" service status >/dev/null && kill -0 $spid \
        && ok "2000 random records, an oversized batch and 50 random hellos: answered or closed, service alive" \
        || bad "random input"
    $as_t1 "$inst/likwid-access" service status >"$inst/admin.log" 2>&1 && bad "a user ran an admin command" \
        || { grep -q "admin commands need root" "$inst/admin.log" && ok "admin commands refused to a user"; } \
        || { cat "$inst/admin.log"; bad "user admin refusal"; }

    rcapped=0; wait $capped || rcapped=$?
    [ $rcapped = 0 ] && ok "a uid with 128 connections open is refused a 129th at once" || bad "connection cap per uid"
    rsilent=0; wait $silent || rsilent=$?
    [ $rsilent = 0 ] && ok "a silent connection is closed after the 5 s hello timeout" || bad "silent connection"

    # 5. SIGTERM: every session ended and restored, exit 0.
    $as_t1 $client add 1 0 w 1 $CTR0 0x77 0 touch $d/E1 wait $d/Eend >/dev/null 2>&1 & pe=$!
    waitfor $d/E1
    [ "$(reg 1 $CTR0)" = $((0x77)) ] && [ $(ls /run/likwid-access/journal | wc -l) = 1 ] \
        && ok "a live session has its journal file" || bad "before SIGTERM: cpu 1 $(reg 1 $CTR0), journal $(ls /run/likwid-access/journal)"
    kill -TERM $spid; rs=0; wait $spid || rs=$?
    [ $rs = 0 ] && [ "$(reg 1 $CTR0)" = 0 ] && [ -z "$(ls /run/likwid-access/journal)" ] && [ ! -e /run/likwid-access/socket ] \
        && ok "SIGTERM: register restored, journal and socket removed, exit 0" \
        || bad "SIGTERM: exit $rs, cpu 1 $(reg 1 $CTR0), journal $(ls /run/likwid-access/journal)"
    touch $d/Eend; wait $pe 2>/dev/null || true

    # 6. SIGKILL, then a restart restores from the journal.
    start_service
    $as_t1 $client add 1 0 w 1 $CTR0 0x88 0 touch $d/F1 wait $d/Fend >/dev/null 2>&1 & pf=$!
    waitfor $d/F1
    kill -KILL $spid; wait $spid 2>/dev/null || true
    [ "$(reg 1 $CTR0)" = $((0x88)) ] && [ $(ls /run/likwid-access/journal | wc -l) = 1 ] \
        && ok "SIGKILLed service: the register keeps 0x88, the journal stays" || bad "after SIGKILL: cpu 1 $(reg 1 $CTR0)"
    start_service
    [ "$(reg 1 $CTR0)" = 0 ] && [ -z "$(ls /run/likwid-access/journal)" ] \
        && ok "restart: journal replayed (register restored) and removed" || bad "after restart: cpu 1 $(reg 1 $CTR0)"
    touch $d/Fend; wait $pf 2>/dev/null || true
    kill -TERM $spid; wait $spid || bad "second service exit"

    echo "service.sh took ${SECONDS} s"

    sleep 0.2; kill $sink_pid
    scoped="refused write: uid=$u1 pid=[0-9]+ cpu=1 .*outside the client.s cpuset"
    [ -n "$cg" ] || scoped="service listening"
    for pattern in "session [0-9]+: refused write: uid=$u2 pid=[0-9]+ cpu=0 device=0 reg=0xc0010201: service.conf grants this user read access only" \
                   "likwid-access service refused uid $u3 pid [0-9]+ \(library\): /etc/likwid-access/service.conf grants no access \(line 4\)" \
                   "$scoped" \
                   "refused write: uid=$u1 .*cpu 0 is programmed by session [0-9]+ \(uid=$u1 pid=[0-9]+\)" \
                   "refused uid $u1 pid [0-9]+ \(hand-over\): handed socket.s peer is uid 0" \
                   "refused uid $u1 pid [0-9]+ \(admin\): admin commands need root" \
                   "not a likwid-access hello" \
                   "refused connection of uid $u3 pid [0-9]+: uid $u3 has 128 connections open" \
                   "SIGTERM: ended 1 sessions, registers restored" \
                   "left by a service that did not stop; restored 1 of 1 registers"; do
        grep -Eq "$pattern" "$inst/syslog" && ok "syslog: $pattern" || bad "syslog lacks: $pattern"
    done
    [ $fail = 0 ] || { echo "--- syslog:"; cat "$inst/syslog"; echo "--- service stderr:"; cat "$inst/service.err"; }
    exit $fail
' service "$inst" "$u1" "$g1" "$u2" "$g2" "$u3" "$g3" "$(realpath c-tests/syslog_sink.py)" \
    "$(realpath c-tests/private-dev.sh)" "$cg_base" "$py"
