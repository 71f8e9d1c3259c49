#!/usr/bin/env bash
# The real privilege boundary: setuid-root and setcap copies of the daemon, started through our
# library by unprivileged users, in a private mount namespace whose /dev/cpu/N/msr are
# root-owned 0600 register stores and whose /dev/log is recorded. Needs root.
# usage: c-tests/privilege.sh   (from the repo root; exit 77 = skipped)
set -euo pipefail
rel=$PWD/target/release
for tool in setpriv setcap unshare python3 useradd; do
    command -v $tool >/dev/null || { echo "SKIP: needs $tool"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to install setuid and setcap copies"; exit 77; }
for u in likwid-t1 likwid-t2; do
    id -u $u >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin $u
done
u1=$(id -u likwid-t1) g1=$(id -g likwid-t1) u2=$(id -u likwid-t2) g2=$(id -g likwid-t2)
as_t1=(setpriv --reuid="$u1" --regid="$g1" --clear-groups)
as_t2=(setpriv --reuid="$u2" --regid="$g2" --clear-groups)

# A directory every user can traverse, on a file system that honours setuid.
inst=$(mktemp -d /var/lib/likwid-access-priv.XXXXXX)
impostor_pid=
cleanup() {
    [ -n "$impostor_pid" ] && kill "$impostor_pid" 2>/dev/null
    find /tmp -maxdepth 1 -name 'likwid-*' \( -user likwid-t1 -o -user likwid-t2 \) -delete 2>/dev/null
    rm -rf "$inst"
}
trap cleanup EXIT
chmod 0755 "$inst"
mkdir -m 0755 "$inst/lib" "$inst/suid" "$inst/cap"
cp "$rel/liblikwid_access.so" "$inst/lib/liblikwid_access.so.0"
cp "$rel/likwid-access" "$inst/"
cc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -Ic-tests c-tests/priv_client.c -L"$rel" \
   -llikwid_access -Wl,-rpath,"$inst/lib" -o "$inst/priv_client"
install -m 4755 -o root -g root "$rel/likwid-accessD" "$inst/suid/likwid-accessD"
install -m 0755 -o root -g root "$rel/likwid-accessD" "$inst/cap/likwid-accessD"
setcap cap_dac_override,cap_sys_rawio=ep "$inst/cap/likwid-accessD"
chmod -R a+rX "$inst"
"$rel/likwid-access" sim "$inst/host" --cpu zen4 --cpus 2 >/dev/null
# likwid-t1's own tree, which the secure-exec daemon must ignore.
mkdir -m 0755 "$inst/usertree" && chown "$u1:$g1" "$inst/usertree"
"${as_t1[@]}" "$inst/likwid-access" sim "$inst/usertree" --cpu zen4 --cpus 2 >/dev/null
cat >"$inst/fake-likwid" <<FAKE
#!/bin/bash
# Pretends to be LIKWID's daemon while another user plants its socket path.
${as_t2[*]} python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); time.sleep(20)' /tmp/likwid-\$\$ &
sleep 20
FAKE
chmod 0755 "$inst/fake-likwid"

unshare -m --propagation private bash -euc '
    inst=$1 u1=$2 g1=$3 u2=$4 g2=$5 sink=$6
    as_t1="setpriv --reuid=$u1 --regid=$g1 --clear-groups"
    as_t2="setpriv --reuid=$u2 --regid=$g2 --clear-groups"
    source "${7}"
    private_dev "$inst" 2
    mount --bind "$inst/host/proc/cpuinfo" /proc/cpuinfo
    python3 "$sink" /dev/log "$inst/syslog" "$inst/ready" & sink_pid=$!
    for _ in $(seq 100); do [ -e "$inst/ready" ] && break; sleep 0.05; done
    fail=0
    ok() { echo "PASS $1"; }
    bad() { echo "FAIL $1"; fail=1; }
    reg() { od -A n -t u8 -j $((8 * $2)) -N 8 "$1" | tr -d " "; }
    CTR0=$((0xC0010201))

    for variant in suid cap; do
        : >"/dev/cpu/0/msr.$variant"
        out=$(env LIKWID_ACCESSD="$inst/$variant/likwid-accessD" LIKWID_ACCESS_ROOT="$inst/usertree" \
              LIKWID_ACCESS_DEBUG=1 $as_t1 "$inst/priv_client" session 0 2>&1) && ok "$variant: user session, daemon Uid/Gid = user, CapEff 0, NoNewPrivs 1" \
            || { echo "$out"; bad "$variant: user session"; }
        [ "$(reg /dev/cpu/1/msr $CTR0)" = $((0x5551)) ] && ok "$variant: write reached the real /dev/cpu/1/msr" \
            || bad "$variant: /dev/cpu/1/msr holds $(reg /dev/cpu/1/msr $CTR0)"
        [ "$(reg "$inst/usertree/dev/cpu/1/msr" $CTR0)" = 0 ] && ok "$variant: LIKWID_ACCESS_ROOT ignored under secure-exec" \
            || bad "$variant: the user tree was written"
        printf "\0\0\0\0\0\0\0\0" | dd of=/dev/cpu/1/msr bs=8 seek=$CTR0 conv=notrunc status=none
    done

    # A crashing client: the dropped daemon still restores through the files it opened as root.
    printf "\x77\0\0\0\0\0\0\0" | dd of=/dev/cpu/0/msr bs=8 seek=$CTR0 conv=notrunc status=none
    (env LIKWID_ACCESSD="$inst/suid/likwid-accessD" $as_t1 "$inst/priv_client" crash >/dev/null 2>&1 || true)
    sleep 0.1
    [ "$(reg /dev/cpu/0/msr $CTR0)" = $((0x77)) ] && ok "suid: SIGKILLed client, original value restored within 100 ms" \
        || bad "suid: after the crash /dev/cpu/0/msr holds $(reg /dev/cpu/0/msr $CTR0)"

    # LIKWID-style start by likwid-t1: another user cannot connect, and root is refused by SO_PEERCRED.
    $as_t1 "$inst/suid/likwid-accessD" & dpid=$!
    for _ in $(seq 200); do [ -S /tmp/likwid-$dpid ] && break; sleep 0.01; done
    [ "$(stat -c "%u %a" /tmp/likwid-$dpid)" = "$u1 600" ] && ok "compat socket is 0600 and owned by the caller" \
        || bad "compat socket: $(stat -c "%u %a" /tmp/likwid-$dpid)"
    connect="import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.send(bytes(32)); sys.exit(0 if s.recv(32) else 3)"
    $as_t2 python3 -c "$connect" /tmp/likwid-$dpid 2>/dev/null && bad "likwid-t2 connected to likwid-t1 daemon" \
        || ok "a second user cannot connect to the first user daemon"
    python3 -c "$connect" /tmp/likwid-$dpid 2>/dev/null && bad "root was served by likwid-t1 daemon" \
        || ok "a peer with another uid (root) is refused by SO_PEERCRED"
    wait $dpid || true

    # An impostor socket planted by likwid-t2 at the path LIKWID'"'"'s daemon would use.
    env LIKWID_ACCESSD="$inst/fake-likwid" LIKWID_ACCESS_VERBOSE=1 "$inst/priv_client" refused 13 >"$inst/impostor.log" 2>&1 \
        && grep -q "likwid-access: refusing /tmp/likwid-" "$inst/impostor.log" \
        && ok "an impostor /tmp/likwid-<pid> planted by another user is refused (-EACCES)" \
        || { cat "$inst/impostor.log"; bad "impostor socket"; }
    pkill -u "$u2" -f "s.bind" 2>/dev/null || true

    # Caller-chosen text in the log (an argument, LIKWID_ACCESS_ROOT) cannot forge a record, and
    # the caller'"'"'s TZ does not date the records (UTC). Etc/GMT-14 is 14 hours ahead.
    hours="$(date -u "+%b %e %H")"
    env TZ=Etc/GMT-14 $as_t1 "$inst/suid/likwid-accessD" "--x
likwid-accessD[1]: forged by argument" 2>/dev/null || true
    env TZ=Etc/GMT-14 LIKWID_ACCESS_ROOT="/x
likwid-accessD[1]: forged by environment" $as_t1 "$inst/suid/likwid-accessD" & dpid=$!
    for _ in $(seq 200); do [ -S /tmp/likwid-$dpid ] && break; sleep 0.01; done
    kill $dpid 2>/dev/null || true; wait $dpid 2>/dev/null || true
    hours="$hours|$(date -u "+%b %e %H")"
    sleep 0.2
    grep -q "^likwid-accessD\[1\]: forged" "$inst/syslog" && bad "syslog: a newline in caller text forged a record" \
        || ok "syslog: caller text cannot start a record of its own"
    grep -qF "unknown argument \`--x\\u{a}likwid-accessD[1]: forged by argument\`" "$inst/syslog" \
        && grep -qF "ignoring LIKWID_ACCESS_ROOT=/x\\u{a}likwid-accessD[1]: forged by environment under secure-exec" "$inst/syslog" \
        && ok "syslog: caller text is logged escaped" || bad "syslog: escaped caller text missing"
    stamps=$(grep -E "^<[0-9]+>.*forged by" "$inst/syslog" | sed -E "s/^<[0-9]+>(.{12}).*/\1/" | cut -c1-9 | sort -u)
    bad_stamps=$(echo "$stamps" | grep -vxE "$hours" || true)
    [ -n "$stamps" ] && [ -z "$bad_stamps" ] && ok "syslog: records dated in UTC whatever the caller'"'"'s TZ ($hours)" \
        || bad "syslog: record times '"'"'$stamps'"'"' are not the UTC hour ($hours)"

    sleep 0.2; kill $sink_pid
    for pattern in "ignoring LIKWID_ACCESS_ROOT=.* under secure-exec" "ignoring LIKWID_ACCESS_DEBUG under secure-exec" \
                   "denied write: uid=$u1 pid=[0-9]+ cpu=0 device=0 reg=0xc0010010" \
                   "refused peer uid 0 pid [0-9]+: the daemon serves uid $u1 only" \
                   "client left without EXIT; restored [0-9]+ registers"; do
        grep -Eq "$pattern" "$inst/syslog" && ok "syslog: $pattern" || bad "syslog lacks: $pattern"
    done
    [ $fail = 0 ] || { echo "--- syslog:"; cat "$inst/syslog"; }
    exit $fail
' privilege "$inst" "$u1" "$g1" "$u2" "$g2" "$(realpath c-tests/syslog_sink.py)" "$(realpath c-tests/private-dev.sh)"
