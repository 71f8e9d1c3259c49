#!/usr/bin/env bash
# tests/service/edge.sh - service mode at its edges, from an installed tree with no setuid file
# and no file capability (`make install` into a scratch DESTDIR):
#   1. unmodified LIKWID (Debian's 5.2.2 and 5.5.1 in /opt/likwid-5.5.1) likwid-perfctr run by
#      an unprivileged user: LIKWID execs our plain likwid-accessD, which relays its connection
#      to the service (src/daemon/relay.rs); every counter printed, none `-`, registers written
#      by the service, no /tmp/likwid-* or relay process left;
#   2. a rootless container: a client in `unshare --user --map-root-user --mount` that sees no
#      /dev/cpu and only the bind-mounted service socket is served as its host uid (admin
#      status), and LIKWID run inside it relays too (root of a user namespace is no privilege);
#   3. the Slurm prolog/epilog on a simulated job (SLURM_JOB_ID/USER/UID, a cpuset cgroup named
#      as Slurm's .../slurm/uid_U/job_J): prolog hands the lock file to the user, a session in
#      the job programs a register, epilog ends it, restores the register, gives the lock back.
# Private mount namespace (tmpfs on /run and /etc/likwid-access, a scratch /dev with register
# stores, a recorded /dev/log, an overlay on /etc for LIKWID's topology file). Needs root.
# usage: tests/service/edge.sh   (exit 77 = skipped; CI=true never skips)
# shellcheck disable=SC2015,SC2016,SC2317  # `a && ok || bad` is meant; the inner script is single-quoted; cleanup runs from the trap
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/likwid/topo.sh
source "$here/../likwid/topo.sh"
root=$(cd "$here/../.." && pwd)
rel=$root/target/release

skip() {
    if [[ ${CI:-} == true ]]; then echo "FAIL: $1 (CI=true never skips)"; exit 1; fi
    echo "SKIP: $1"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root (service, namespaces, cgroups)"
for tool in unshare setpriv python3 useradd cc getcap; do
    command -v $tool >/dev/null || skip "needs $tool"
done
[[ -x /usr/bin/likwid-perfctr ]] || skip "LIKWID 5.2.2 is not installed (apt-get install likwid)"
[[ -x $rel/likwid-accessD ]] || { echo "FAIL: $rel/likwid-accessD missing (make build first)"; exit 1; }
# A user of its own: other tests (c-tests/service.sh, privilege.sh) use likwid-t1 and may run at
# the same time on a shared machine; the leftover checks look at this user's files only.
id -u likwid-edge >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin likwid-edge
u1=$(id -u likwid-edge) g1=$(id -g likwid-edge)
versions=(/usr)
if [[ -x /opt/likwid-5.5.1/bin/likwid-perfctr ]]; then
    versions+=(/opt/likwid-5.5.1)
else
    echo "NOTE: /opt/likwid-5.5.1 is not built (tests/likwid/harness.sh builds it): 5.5.1 not run"
fi

inst=$(mktemp -d /tmp/likwid-edge.XXXXXX)
made_etc='' cg_job='' cg_made=() cg_enabled=''
cleanup() {
    local d
    for d in "${cg_made[@]}"; do rmdir "$d" 2>/dev/null || true; done
    # The v2 cpuset controller goes off again if this script switched it on.
    [[ -n $cg_enabled ]] && { echo -cpuset >"$cg_enabled/cgroup.subtree_control" 2>/dev/null || true; }
    [[ -n $made_etc ]] && rmdir /etc/likwid-access 2>/dev/null
    find /tmp -maxdepth 1 -name 'likwid-[0-9]*' -user likwid-edge -delete 2>/dev/null
    if [[ $fail == 0 && -z ${KEEP:-} ]]; then rm -rf "$inst"; else echo "kept $inst"; fi
}
trap cleanup EXIT
chmod 0755 "$inst"
mkdir -m 0777 "$inst/sync"

# The installed tree: `make install`, then nothing of ours may be setuid or carry capabilities.
prefix=/usr/local
make -s -C "$root" install DESTDIR="$inst/dest" PREFIX=$prefix >"$inst/install.log"
dest=$inst/dest$prefix
fail=0
ok() { echo "PASS $1"; }
bad() { echo "FAIL $1"; fail=1; }
suid=$(find "$inst/dest" -xdev -perm -4000 -o -xdev -perm -2000)
caps=$(getcap -r "$inst/dest" 2>/dev/null)
[[ -z $suid && -z $caps ]] && ok "installed tree: no setuid/setgid file, no file capability (find -perm -4000/-2000, getcap -r)" \
    || bad "installed tree: setuid '$suid' capabilities '$caps'"
chmod -R a+rX "$inst/dest"
cc -std=c11 -Wall -Wextra -Werror -pedantic -D_POSIX_C_SOURCE=200809L -I"$root/include" \
    "$root/c-tests/service_client.c" -L"$dest/lib" -llikwid_access -Wl,-rpath,"$dest/lib" -o "$inst/client"
chmod 0755 "$inst/client"
# LIKWID's runs (CPU:GROUP, one socket each): a core group on Zen 3 and the uncore memory group
# on Skylake-SP, whose PCI units the service numbers per client (5.2 and 5.4/5.5 differ).
read -ra runs <<<"${EDGE_RUNS:-zen3:CLOCK skx:MEM}"
# The other parts use the Zen 3 machine at $inst/host.
"$rel/likwid-access" sim "$inst/host" --cpu zen3 --cpus 2 >/dev/null
for r in "${runs[@]}"; do
    cpu=${r%%:*} h=$inst/host-${r%%:*}
    [[ -d $h ]] || "$rel/likwid-access" sim "$h" --cpu "$cpu" --cpus 2 >/dev/null
    # LIKWID believes it runs on the simulated CPU (a topology file it reads instead of probing, made as
    # tests/likwid/harness.sh makes it from tests/likwid/cpus.txt's row).
    read -r _ intel perf_version perf_num_ctr perf_num_fixed stepping _ < <(awk -v c="$cpu" '$1 == c' "$here/../likwid/cpus.txt")
    family=$(awk -F: '/^cpu family/ { print $2 + 0; exit }' "$h/proc/cpuinfo")
    model=$(awk -F: '/^model[ \t]*:/ { print $2 + 0; exit }' "$h/proc/cpuinfo")
    for p in "${versions[@]}"; do
        rm -f "$inst/topo.cfg"
        "$p/bin/likwid-genTopoCfg" -o "$inst/topo.cfg" >/dev/null 2>&1 || true
        [[ -s $inst/topo.cfg ]] || { echo "FAIL: $p/bin/likwid-genTopoCfg wrote no topology file"; exit 1; }
        likwid_topo "$family" "$model" "$stepping" "$intel" "$perf_version" "$perf_num_ctr" "$perf_num_fixed" 48 \
            <"$inst/topo.cfg" >"$inst/topo-$cpu-$(basename "$p").cfg"
    done
done
chmod -R a+rX "$inst"/host*
chmod a+r "$inst"/topo-*.cfg
if [[ ! -d /etc/likwid-access ]]; then mkdir -m 0755 /etc/likwid-access; made_etc=1; fi

# A cpuset cgroup named as Slurm's (v1: cpuset/slurm/uid_U/job_J; v2: .../job_J), CPU 0 only.
job=77$$
v1=$(awk '/ - cgroup / && $NF ~ /(^|,)cpuset(,|$)/ { print $5; exit }' /proc/self/mountinfo)
v2=$(awk '/ - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
if [[ -n $v1 ]]; then
    base=$v1/slurm-edge-$$
    for d in "$base" "$base/uid_$u1" "$base/uid_$u1/job_$job"; do
        mkdir "$d" && cg_made=("$d" "${cg_made[@]}")
        cat "$v1/cpuset.mems" >"$d/cpuset.mems"
        echo 0 >"$d/cpuset.cpus"
    done
    cg_job=$base/uid_$u1/job_$job
elif [[ -n $v2 ]] && grep -qw cpuset "$v2/cgroup.controllers"; then
    if ! grep -qw cpuset "$v2/cgroup.subtree_control"; then
        echo +cpuset >"$v2/cgroup.subtree_control"
        cg_enabled=$v2
    fi
    base=$v2/slurm-edge-$$
    for d in "$base" "$base/uid_$u1" "$base/uid_$u1/job_$job"; do
        mkdir "$d" && cg_made=("$d" "${cg_made[@]}")
        [[ $d == */job_* ]] || echo +cpuset >"$d/cgroup.subtree_control"
    done
    echo 0 >"$base/uid_$u1/job_$job/cpuset.cpus"
    cg_job=$base/uid_$u1/job_$job
else
    echo "NOTE: no cpuset cgroup here: the Slurm job runs without one (reset by job id finds nothing)"
fi

unshare -m --propagation private bash -euo pipefail -c '
    inst=$1 root=$2 u1=$3 g1=$4 dest=$5 job=$6 cg_job=$7 fail=0
    read -ra runs <<<"$8"
    shift 8
    versions=("$@")
    source "$root/c-tests/private-dev.sh"
    private_dev "$inst" 2
    mount --bind "$inst/host/proc/cpuinfo" /proc/cpuinfo
    mount -t tmpfs -o mode=0755 none /run
    mount -t tmpfs -o mode=0755 none /etc/likwid-access
    mkdir "$inst/etc-upper" "$inst/etc-work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$inst/etc-upper,workdir=$inst/etc-work" /etc
    python3 "$root/c-tests/syslog_sink.py" /dev/log "$inst/syslog" "$inst/ready" & sink=$!
    spid=
    trap "kill \$sink \${spid:-} 2>/dev/null; wait" EXIT
    for _ in $(seq 100); do [[ -e $inst/ready ]] && break; sleep 0.05; done
    ok() { echo "PASS $1"; }
    bad() { echo "FAIL $1"; fail=1; }
    as_t1=(setpriv --reuid="$u1" --regid="$g1" --clear-groups)
    clean_env=(env -i PATH=/usr/bin:/bin)
    reg() { printf "%d" "$(python3 "$root/tests/likwid/regstore.py" get "$inst/host/dev/cpu/$1/msr" "$2")"; }
    waitfor() { for _ in $(seq 500); do [[ -e $1 ]] && return 0; sleep 0.02; done; echo "timed out waiting for $1"; return 1; }
    leftovers() {   # no socket file and no relay left by the user
        local t p
        t=$(find /tmp -maxdepth 1 -name "likwid-[0-9]*" -user likwid-edge)
        p=$(pgrep -u "$u1" -f likwid-accessD || true)
        [[ -z $t && -z $p ]] && ok "$1: no /tmp/likwid-* file and no likwid-accessD of the user left" \
            || bad "$1: left behind: files [$t] processes [$p]"
    }
    printf "user likwid-edge read-write\ndefault none\n" >/etc/likwid-access/service.conf
    start_service() {   # ROOT: the simulated machine it serves
        LIKWID_ACCESS_ROOT=$1 "$dest/sbin/likwid-accessD" --service 2>>"$inst/service.err" & spid=$!
        for _ in $(seq 250); do "$dest/bin/likwid-access" service status >/dev/null 2>&1 && return 0; sleep 0.02; done
        cat "$inst/service.err"; echo "FAIL service did not start"; exit 1
    }
    stop_service() { kill -TERM "$spid"; wait "$spid" || bad "service exit $? at SIGTERM"; spid=; }

    # 1. Unmodified LIKWID through the relay: our installed likwid-accessD is first on PATH
    #    (LIKWID finds its daemon with `which likwid-accessD`) and has no privilege.
    regs() { python3 "$root/tests/likwid/regstore.py" dump "$1"; }
    for r in "${runs[@]}"; do
        cpu=${r%%:*} group=${r#*:} h=$inst/host-${r%%:*}
        mount --bind "$h/proc/cpuinfo" /proc/cpuinfo
        start_service "$h"
        for p in "${versions[@]}"; do
            v=$("$p/bin/likwid-perfctr" -v | awk "/Version/ { print \$4; exit }")
            cp "$inst/topo-$cpu-$(basename "$p").cfg" /etc/likwid_topo.cfg
            # The measured program records cpu 0 registers while LIKWID counts (LIKWID clears
            # them at stop): the service wrote them, since nothing else can.
            regs "$h/dev/cpu/0/msr" >"$inst/before"
            printf "#!/bin/sh\npython3 %s dump %s >%s\n" "$root/tests/likwid/regstore.py" "$h/dev/cpu/0/msr" \
                "$inst/sync/during" >"$inst/measure.sh"
            chmod 0755 "$inst/measure.sh"
            rm -f "$inst/sync/during"
            rc=0
            timeout 60 "${as_t1[@]}" env -i PATH="$dest/sbin:$dest/bin:$p/bin:/usr/bin:/bin" \
                likwid-perfctr -M 1 -C 0-1 -g "$group" "$inst/measure.sh" >"$inst/perfctr-$cpu-$v.out" 2>&1 || rc=$?
            dashes=$(python3 "$root/tests/likwid/regstore.py" dashes "$inst/perfctr-$cpu-$v.out")
            counters=$(grep -cE "^\| *[A-Z_0-9]+ +\| +[A-Z0-9]+ +\| +[0-9.e+-]+ +\|" "$inst/perfctr-$cpu-$v.out" || true)
            changed=$(diff "$inst/before" "$inst/sync/during" 2>/dev/null | grep -c "^>" || true)
            if [[ $rc == 0 && -z $dashes && $counters -gt 0 && $changed -gt 0 ]]; then
                ok "LIKWID $v likwid-perfctr -g $group on $cpu as likwid-edge through the relay: $counters counters, none -, $changed cpu 0 registers programmed while counting"
            else
                bad "LIKWID $v likwid-perfctr -g $group on $cpu: exit $rc, dashes [$dashes], $counters counters, $changed registers programmed:"
                head -40 "$inst/perfctr-$cpu-$v.out"
            fi
            leftovers "LIKWID $v on $cpu"
        done
        stop_service
        umount /proc/cpuinfo
    done
    rm -f /etc/likwid_topo.cfg
    sleep 0.1   # the sink writes what arrived
    # Every LIKWID PCI numbering comes from the library its client mapped (the relay reads
    # the client /proc/PID/maps as the client user and sends it in the hand-over hello:
    # the service keeps no CAP_SYS_PTRACE), and nothing LIKWID asked for was refused.
    want="5.2"; [[ ${#versions[@]} -gt 1 ]] && want="5.2 5.4"
    for n in $want; do
        grep -q "speaks LIKWID $n PCI device numbering: its relay (pid [0-9]*) found it in the client.s maps" "$inst/syslog" \
            && ok "service: a relayed LIKWID client was numbered $n from its mapped liblikwid, sent by its relay" \
            || bad "service never chose numbering $n: $(grep -i numbering "$inst/syslog" | head -3)"
    done
    refused=$(grep -iE "refused|denied" "$inst/syslog" || true)
    [[ -z $refused ]] && ok "service: no refusal while LIKWID ran" || bad "refusals: $(head -3 <<<"$refused")"
    start_service "$inst/host"

    # 2. A rootless container: user + mount namespace, no /dev/cpu, the socket bind-mounted in.
    mkdir -m 0777 "$inst/ctr"
    cat >"$inst/ctr/inside.sh" <<EOF
set -eu
mkdir /tmp/ctr-\$\$ && touch /tmp/ctr-\$\$/socket
mount --bind /run/likwid-access/socket /tmp/ctr-\$\$/socket
mount -t tmpfs none /run && mkdir /run/likwid-access && touch /run/likwid-access/socket
mount --bind /tmp/ctr-\$\$/socket /run/likwid-access/socket
umount /tmp/ctr-\$\$/socket && rm -r /tmp/ctr-\$\$
mount -t tmpfs none /dev/cpu
[ -z "\$(ls /dev/cpu)" ] && [ "\$(id -u)" = 0 ] || { echo "container set-up: /dev/cpu \$(ls /dev/cpu), uid \$(id -u)"; exit 1; }
shift
"\$@"
EOF
    "${as_t1[@]}" "${clean_env[@]}" unshare --user --map-root-user --mount sh "$inst/ctr/inside.sh" lib \
        "$inst/client" add 0 0 w 0 $((0xC0010201)) 0x4d 0 touch "$inst/sync/ctr1" wait "$inst/sync/ctr2" fin \
        >"$inst/ctr.log" 2>&1 & pc=$!
    if waitfor "$inst/sync/ctr1"; then
        status=$("$dest/bin/likwid-access" service status)
        grep -Eq "^session [0-9]+ uid=$u1 pid=[0-9]+ cpus=0 writes=1$" <<<"$status" \
            && ok "container client (uid 0 in its user namespace, no /dev/cpu) served as host uid $u1: $(grep "uid=$u1" <<<"$status")" \
            || bad "container session not listed as uid $u1: $status"
    fi
    touch "$inst/sync/ctr2"
    rc=0; wait $pc || rc=$?
    [[ $rc == 0 && $(reg 0 $((0xC0010201))) == $((0x4d)) ]] && ok "container client wrote through the bind-mounted socket" \
        || { cat "$inst/ctr.log"; bad "container client: exit $rc, register $(reg 0 $((0xC0010201)))"; }
    p=${versions[0]}
    cp "$inst/topo-zen3-$(basename "$p").cfg" /etc/likwid_topo.cfg
    CTL0=$((0xC0010200))
    python3 "$root/tests/likwid/regstore.py" set "$inst/host/dev/cpu/0/msr" $CTL0 0
    printf "#!/bin/sh\npython3 %s get %s 0x%x >%s\n" "$root/tests/likwid/regstore.py" \
        "$inst/host/dev/cpu/0/msr" $CTL0 "$inst/sync/ctl-ctr" >"$inst/measure-ctr.sh"
    chmod 0755 "$inst/measure-ctr.sh"
    rc=0
    timeout 60 "${as_t1[@]}" env -i PATH="$dest/sbin:$dest/bin:$p/bin:/usr/bin:/bin" \
        unshare --user --map-root-user --mount sh "$inst/ctr/inside.sh" likwid \
        likwid-perfctr -M 1 -C 0-1 -g CLOCK "$inst/measure-ctr.sh" >"$inst/ctr-perfctr.out" 2>&1 || rc=$?
    dashes=$(python3 "$root/tests/likwid/regstore.py" dashes "$inst/ctr-perfctr.out")
    ctl=$(printf "%d" "$(cat "$inst/sync/ctl-ctr" 2>/dev/null || echo 0)")
    [[ $rc == 0 && -z $dashes && $ctl != 0 ]] && grep -q "^| *Runtime" "$inst/ctr-perfctr.out" \
        && ok "LIKWID $("$p/bin/likwid-perfctr" -v | awk "/Version/ { print \$4; exit }") inside the container (root of a user namespace: no privilege) relays to the service: PERF_CTL0 $(printf %#x "$ctl") while counting" \
        || { head -30 "$inst/ctr-perfctr.out"; bad "LIKWID in the container: exit $rc, dashes [$dashes], PERF_CTL0 $ctl"; }
    rm -f /etc/likwid_topo.cfg
    leftovers "container"

    # 3. Slurm prolog/epilog on a simulated job.
    export SLURM_JOB_ID=$job SLURM_JOB_USER=likwid-edge SLURM_JOB_UID=$u1
    export LIKWID_ACCESS=$dest/bin/likwid-access
    slurm=$dest/share/likwid-access/slurm
    CTR1=$((0xC0010203))
    python3 "$root/tests/likwid/regstore.py" set "$inst/host/dev/cpu/0/msr" $CTR1 0x11
    "$slurm/prolog" && [[ $(stat -c "%u %a" /var/run/likwid.lock) == "$u1 644" ]] \
        && ok "prolog: /var/run/likwid.lock created and handed to uid $u1" || bad "prolog: lock $(stat -c "%u %a" /var/run/likwid.lock 2>&1)"
    job_client=("${as_t1[@]}" "${clean_env[@]}" "$inst/client" add 0 0 w 0 $CTR1 0x99 0 touch "$inst/sync/job1" wait "$inst/sync/job2" r 0 $CTR1 -107)
    if [[ -n $cg_job ]]; then
        sh -c "echo \$\$ >$cg_job/cgroup.procs && exec \"\$@\"" sh "${job_client[@]}" >"$inst/job.log" 2>&1 & pj=$!
    else
        "${job_client[@]}" >"$inst/job.log" 2>&1 & pj=$!
    fi
    waitfor "$inst/sync/job1"
    [[ $(reg 0 $CTR1) == $((0x99)) ]] || bad "job session did not program cpu 0: $(reg 0 $CTR1)"
    out=$("$slurm/epilog" 2>&1) && erc=0 || erc=$?
    echo "$out" | sed "s/^/  epilog: /"
    touch "$inst/sync/job2"
    rc=0; wait $pj || rc=$?
    if [[ -n $cg_job ]]; then
        [[ $erc == 0 ]] && grep -Eq "ended session [0-9]+ uid=$u1 pid=$pj restored=1" <<<"$out" \
            && [[ $(reg 0 $CTR1) == $((0x11)) && $rc == 0 ]] \
            && ok "epilog: the job session ended (client then gets -ENOTCONN) and cpu 0 restored to 0x11" \
            || { cat "$inst/job.log"; bad "epilog: exit $erc, register $(reg 0 $CTR1), client exit $rc"; }
    else
        [[ $erc == 0 ]] && ok "epilog ran (no cpuset cgroup: no job session to end)" || bad "epilog exit $erc"
    fi
    [[ $(stat -c %u /var/run/likwid.lock) == 0 ]] && ok "epilog: lock file given back to root" \
        || bad "epilog: lock owner $(stat -c %u /var/run/likwid.lock)"
    status=$("$dest/bin/likwid-access" service status)
    [[ -z $status ]] && ok "no session left after the epilog" || bad "sessions left: $status"
    leftovers "slurm"

    stop_service
    if grep -q "relay to the service failed" "$inst/syslog"; then
        bad "a relay failed: $(grep "relay to the service failed" "$inst/syslog" | head -2)"
    else
        ok "syslog: no relay failure"
    fi
    exit $fail
' edge "$inst" "$root" "$u1" "$g1" "$dest" "$job" "$cg_job" "${runs[*]}" "${versions[@]}" || fail=1
exit $fail
