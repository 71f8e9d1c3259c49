#!/usr/bin/env bash
# tests/likwid/harness.sh - unmodified LIKWID 5 tools on our likwid-accessD: Debian's 5.2.2
# (/usr) and LIKWID 5.5.1 built from its release source (/opt/likwid-5.5.1), both installed.
#
# For each LIKWID version and simulated CPU: a private mount namespace whose /dev is a scratch
# tmpfs with register-store files as /dev/cpu/N/msr and a datagram /dev/log, a matching
# /proc/cpuinfo and /etc/likwid_topo.cfg, and our daemon first on PATH (through a wrapper that
# switches on its request trace). Then every performance group that version's
# `likwid-perfctr -a` lists, likwid-powermeter, likwid-features on Intel, value checks (RAPL
# energy, a core counter and one uncore counter advanced by a known amount while LIKWID
# measures), and on CPUs both versions run, both versions' MEM group at the same time.
# A group fails when the tool fails, the daemon refused or failed an access, the registers
# disagree with what LIKWID wrote, or any counter of its event table prints `-` (LIKWID
# exits 0 then) - unless tests/likwid/known-gaps.txt lists it with its reason.
#
# usage: tests/likwid/harness.sh [-l VERSION]... [-c CPU]... [-g GROUP]... [--record] [--keep]
#   -l VERSION LIKWID version to run (repeatable): 5.2.2, 5.5.1; default both. 5.5.1 is built
#              from ../shared/peers into /opt/likwid-5.5.1 once per machine when missing;
#              without ../shared/peers it is skipped loudly (a build failure fails)
#   -c CPU     run this CPU (repeatable) on every selected version that knows it; default: each
#              version's list in likwid_table below. Any CPU of tests/likwid/cpus.txt works
#   -g GROUP   run only this group (and skip the other tools)
#   --record   write the deduplicated traces to tests/likwid/traces/CPU/GROUP[@VERSION].trace
#   --keep     keep the work directory (printed at the end)
# /etc is shared with the host even in a mount namespace (only mounts are private there): the
# topology file lives in an overlay on /etc inside the namespace; without overlayfs an empty
# /etc/likwid_topo.cfg is created as bind target and removed by the EXIT trap. Two namespaces run at a time (2 vCPUs).
# Exit: 0 all passed, 1 something failed, 77 skipped (not root / no likwid; CI=true fails).
# The last line is "N passed, N failed" (", N skipped" follows when known gaps were met or a
# version was skipped: the KNOWN and SKIP lines above it say which and why).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/likwid/topo.sh
source "$here/topo.sh"
rel=$root/target/release

# ---------------------------------------------------------------- the inner half (namespace)
if [[ ${1:-} == --inner ]]; then
    shift
    cpu=$1 w=$2 etc_mode=$3 groups_filter=$4
    # shellcheck source=/dev/null
    source "$w/cpu.env"
    set -e
    # A scratch /dev: a node created in the real /dev (devtmpfs) would appear on the host.
    mkdir -p "$w/devtmp"
    mount -t tmpfs -o mode=0755 none "$w/devtmp"
    for node in null zero full random urandom tty; do
        touch "$w/devtmp/$node"
        mount --bind "/dev/$node" "$w/devtmp/$node"
    done
    for n in 0 1; do
        mkdir -p "$w/devtmp/cpu/$n"
        touch "$w/devtmp/cpu/$n/msr"
        chmod 0600 "$w/devtmp/cpu/$n/msr"
        mount --bind "$w/m/dev/cpu/$n/msr" "$w/devtmp/cpu/$n/msr"
    done
    # Icelake-SP's memory controllers are MMIO windows in /dev/mem: the simulated one.
    if [[ -f $w/m/dev/mem ]]; then
        touch "$w/devtmp/mem"
        chmod 0600 "$w/devtmp/mem"
        mount --bind "$w/m/dev/mem" "$w/devtmp/mem"
    fi
    mount --move "$w/devtmp" /dev
    mount --bind "$w/m/proc/cpuinfo" /proc/cpuinfo
    # The simulated uncore PCI devices (Intel servers) where the daemon looks for them.
    if [[ -d $w/m/sys/bus/pci/devices ]]; then
        mount --bind "$w/m/sys/bus/pci/devices" /sys/bus/pci/devices
    fi
    # /etc is shared with the host (only mounts are private): an overlay keeps the topology
    # file in this namespace; without overlayfs the outer half created an empty target to
    # bind over.
    if [[ $etc_mode == overlay ]]; then
        mkdir -p "$w/etc-upper" "$w/etc-work"
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$w/etc-upper,workdir=$w/etc-work" /etc
        cp "$w/likwid_topo.cfg" /etc/likwid_topo.cfg
    else
        mount --bind "$w/likwid_topo.cfg" /etc/likwid_topo.cfg
    fi
    python3 "$root/c-tests/syslog_sink.py" /dev/log "$w/syslog" "$w/sink-ready" &
    sink=$!
    trap 'kill $sink 2>/dev/null' EXIT
    for _ in $(seq 100); do [[ -e $w/sink-ready ]] && break; sleep 0.05; done
    set +e
    # Our daemon first on PATH (LIKWID runs `which likwid-accessD`), then this version's tools.
    export PATH=$w/wrap:$likwid_prefix/bin:$PATH
    regstore=("python3" "$here/regstore.py")
    msr0=/dev/cpu/0/msr

    settle_syslog() {   # wait until the sink has written everything sent so far
        local a b
        a=$(stat -c %s "$w/syslog")
        for _ in $(seq 40); do
            sleep 0.03
            b=$(stat -c %s "$w/syslog")
            [[ $a == "$b" ]] && return
            a=$b
        done
    }

    # The measured program of each group run: how far the trace got and both register files
    # while LIKWID's counters run (LIKWID clears its registers again when it stops).
    # LIKWID may still be starting the counters on the other CPU when the program begins (and
    # the daemon writes a trace line just after its access): take the snapshot only when no
    # write was traced for 0.2 s before it and while it was taken. Reads do not count: LIKWID
    # 5.5.1 in wrapper mode may read the counters all the time (its loop sleeps for "duration
    # minus the time the read took", which with a CPU clock of 0 in the topology file is -inf).
    cat >"$w/measure.sh" <<EOF
#!/bin/sh
for try in $(seq -s " " 30); do
    writes=\$(grep -c '^write' "$w/trace.cur")
    n=\$(wc -l <"$w/trace.cur")
    sleep 0.2
    python3 "$here/regstore.py" dump /dev/cpu/0/msr >"$w/snap.0"
    python3 "$here/regstore.py" dump /dev/cpu/1/msr >"$w/snap.1"
    m=\$(wc -l <"$w/trace.cur")
    [ "\$writes" = "\$(grep -c '^write' "$w/trace.cur")" ] && break
    # LIKWID 5.5.1 on SPR-class CPUs freezes and unfreezes (writes) in that loop too: after a
    # few tries take the snapshot as it is; the check then accepts any state of lines n..m.
    [ "\$try" -ge 4 ] && break
    sleep 0.05
done
# The dumps were taken while the trace grew from n to m lines: the files may hold any state
# in between (regstore.py verify-snapshot N:M).
echo "\$n:\$m" >"$w/snap.n"
sleep 0.05
EOF
    # The measured program of the value runs advances registers in the device file itself,
    # so the advance lands between LIKWID's start and stop reads.
    cat >"$w/advance.sh" <<EOF
#!/bin/sh
python3 "$here/regstore.py" add $msr0 $pkg_energy_reg $energy_delta &&
python3 "$here/regstore.py" add $msr0 $core_ctr_reg $core_delta
EOF
    # The uncore value check advances counter 0 of the first memory channel of each socket in
    # the simulated device, found as LIKWID's daemon finds it: PCI config space (skx: device
    # 0a.2 of the socket's numa_node, MC_CH0_PCI_PMON_CTR0 at 0xA0), or /dev/mem (icx: the BARs
    # in the socket's 00.1 config at 0xD0/0xD8, channel window + 0x22800, PMON_CTR0 at +0x08).
    if [[ -n $uncore ]]; then
        python3 - "$w/m" "${uncore%%:*}" >"$w/uncore.where" <<'PY'
import glob, os, struct, sys
m, kind = sys.argv[1:3]
def node(dev):
    return int(open(os.path.join(dev, "numa_node")).read())
def dword(dev, off):
    with open(os.path.join(dev, "config"), "rb") as f:
        f.seek(off)
        return struct.unpack("<I", f.read(4))[0]
for s in (0, 1):
    if kind == "pci":
        dev = [d for d in sorted(glob.glob(m + "/sys/bus/pci/devices/*:0a.2")) if node(d) == s][0]
        print(os.path.join(dev, "config"), 0xA0)
    elif kind == "disc":
        # Intel uncore discovery, as our daemon and LIKWID's find it: the socket's device with
        # extended capability 0x23, the (64-bit) BAR it names, the unit entries stride*8 apart,
        # iMC (type 6) id 0, its counter 0 at box_ctl + ctr_offset.
        dev = [d for d in sorted(glob.glob(m + "/sys/bus/pci/devices/*"))
               if node(d) == s and dword(d, 0x100) & 0xFFFF == 0x23][0]
        bar = dword(dev, 0x10) & ~0xFFF
        if dword(dev, 0x10) & 6 == 4:
            bar |= dword(dev, 0x14) << 32
        with open(m + "/dev/mem", "rb") as f:
            f.seek(bar)
            g0 = struct.unpack("<Q", f.read(8))[0]
            for i in range(1, ((g0 >> 16) & 0x3FF) + 1):
                f.seek(bar + i * ((g0 >> 8) & 0xFF) * 8)
                w0, w1, w2 = struct.unpack("<QQQ", f.read(24))
                if w2 & 0xFFFF == 6 and (w2 >> 16) & 0xFFFF == 0:
                    print(m + "/dev/mem", w1 + ((w0 >> 24) & 0xFF))
                    break
    else:
        dev = [d for d in sorted(glob.glob(m + "/sys/bus/pci/devices/*:00.1")) if node(d) == s][0]
        base = (dword(dev, 0xD0) & 0x1FFFFFFF) << 23
        block = base | ((dword(dev, 0xD8) & 0x7FF) << 12)
        print(m + "/dev/mem", block + 0x22800 + 0x08)
PY
        {
            echo '#!/bin/sh'
            s=0
            while read -r file offset; do
                delta_var=uncore_delta$s
                echo "python3 '$here/regstore.py' add-at '$file' $offset ${!delta_var} || exit 1"
                s=$((s + 1))
            done <"$w/uncore.where"
        } >"$w/advance-uncore.sh"
        chmod 0755 "$w/advance-uncore.sh"
    fi
    # The measured program of a both-* run: the two clients' programs meet, which shows both
    # daemons served their clients at the same time (LIKWID starts the daemon before and stops
    # it after the measured program).
    cat >"$w/meet.sh" <<EOF
#!/bin/sh
touch "$w/meeting/\$\$"
for i in \$(seq 100); do
    [ \$(ls "$w/meeting" | wc -l) -ge 2 ] && { touch "$w/met"; exit 0; }
    sleep 0.05
done
EOF
    chmod 0755 "$w/measure.sh" "$w/advance.sh" "$w/meet.sh"

    # run NAME CMD...: one tool run with its own trace, output and exit code under runs/NAME.
    run() {
        local name=$1
        shift
        local d=$w/runs/$name
        mkdir -p "$d"
        : >"$w/trace.cur"
        rm -f "$w"/snap.*
        local before
        before=$(stat -c %s "$w/syslog")
        timeout 60 "$@" >"$d/out" 2>"$d/err"
        echo $? >"$d/rc"
        settle_syslog
        tail -c +$((before + 1)) "$w/syslog" >"$d/syslog"
        mv "$w/trace.cur" "$d/trace"
        # Every register's last accepted write is what its file holds now.
        "${regstore[@]}" verify "$d/trace" /dev/cpu >"$d/verify"
        for f in "$w"/snap.*; do [[ -e $f ]] && mv "$f" "$d/"; done
        printf '%s\n' "$*" >"$d/cmd"
    }

    # What the hardware reports before anyone programs it (presets=REG:VALUE,...).
    for preset in ${presets//,/ }; do
        for n in 0 1; do "${regstore[@]}" set /dev/cpu/$n/msr "${preset%%:*}" "${preset#*:}"; done
    done

    likwid-perfctr -a >"$w/groups.list" 2>&1
    awk 'NR > 2 && NF >= 1 { print $1 }' "$w/groups.list" | sort >"$w/groups"
    while read -r group; do
        [[ -n $groups_filter && ",$groups_filter," != *",$group,"* ]] && continue
        run "perfctr-$group" likwid-perfctr -M 1 -C 0-1 -g "$group" "$w/measure.sh"
    done <"$w/groups"

    if [[ -n $both_prefix && ( -z $groups_filter || ",$groups_filter," == *,MEM,* ) ]]; then
        # Both LIKWID versions at once on one machine: each client starts its own daemon.
        d=$w/runs/both-MEM
        mkdir -p "$d"
        : >"$w/trace.cur"
        before=$(stat -c %s "$w/syslog")
        rm -rf "$w/meeting" "$w/met"
        mkdir "$w/meeting"
        # One socket each: LIKWID refuses counters another measurement has programmed ("The
        # selected register MBOX0C0 is in use"), as it would on real hardware.
        clients=() socket=0
        for prefix in "$both_prefix" "$likwid_prefix"; do
            v=$("$prefix/bin/likwid-perfctr" -v | awk '/Version/ { print $4; exit }')
            echo "$v" >>"$d/versions"
            (
                timeout 60 "$prefix/bin/likwid-perfctr" -M 1 -C $socket -g MEM "$w/meet.sh" >"$d/out.$v" 2>"$d/err.$v"
                echo $? >"$d/rc.$v"
            ) &
            clients+=($!)
            socket=$((socket + 1))
        done
        wait "${clients[@]}"
        [[ -e $w/met ]] && touch "$d/met"
        settle_syslog
        tail -c +$((before + 1)) "$w/syslog" >"$d/syslog"
        mv "$w/trace.cur" "$d/trace"
        "${regstore[@]}" verify "$d/trace" /dev/cpu >"$d/verify"
        sed -i ':a;N;s/\n/ and /;ba' "$d/versions"
    fi

    if [[ -z $groups_filter ]]; then
        if [[ -n $uncore ]]; then
            IFS=: read -r _ event counter <<<"$uncore"
            run value-uncore likwid-perfctr -M 1 -C 0-1 -g "$event:$counter" "$w/advance-uncore.sh"
        fi
        # Item 2: values flow end to end. The measured program advances registers in the
        # device file itself, so the advance lands between LIKWID's start and stop reads.
        # (Without RAPL in LIKWID for this CPU, likwid-powermeter only says so and exits 1.)
        if [[ -n $energy_metric ]]; then
            run powermeter likwid-powermeter -M 1 -s 1s
            run powermeter-info likwid-powermeter -M 1 -i
            "${regstore[@]}" set $msr0 "$rapl_unit_reg" "$rapl_unit"
            "${regstore[@]}" set /dev/cpu/1/msr "$rapl_unit_reg" "$rapl_unit"
            run value-perfctr likwid-perfctr -M 1 -C 0 -g ENERGY "$w/advance.sh"
            run value-powermeter likwid-powermeter -M 1 -c 0 "$w/advance.sh"
        fi

        if [[ $intel == 1 ]]; then
            run features-list likwid-features -l -c 0
        fi
        if [[ $prefetch == 1a4 ]]; then
            "${regstore[@]}" dump $msr0 >"$w/features.0"
            i=0
            for pf in HW_PREFETCHER CL_PREFETCHER DCU_PREFETCHER IP_PREFETCHER; do
                for act in d e; do
                    run "features-$act-$pf" likwid-features -c 0 "-$act" "$pf"
                    i=$((i + 1))
                    "${regstore[@]}" dump $msr0 >"$w/features.$i"
                done
            done
        fi
    fi
    sleep 0.2
    kill $sink 2>/dev/null
    exit 0
fi

# ---------------------------------------------------------------- the outer half
skip() {
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: cannot run the LIKWID drop-in harness: $1 (CI=true never skips)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: LIKWID drop-in harness: $1"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root (private mount namespace, bind mounts)"
for tool in unshare python3 timeout flock; do
    command -v $tool >/dev/null || skip "$tool is missing"
done
for f in "$rel/likwid-accessD" "$rel/likwid-access"; do
    [[ -x $f ]] || { echo "FAIL: $f missing (make build first)"; echo "0 passed, 1 failed"; exit 1; }
done

# The LIKWID installations: version, prefix (tools in PREFIX/bin, groups in
# PREFIX/share/likwid/perfgroups), and the CPUs each runs by default. A CPU added to 5.5.1's
# list (spr, emr, gnr, ...) needs its row in cpus.txt.
# (LIKWID_HARNESS_PREFIX_551 and LIKWID_HARNESS_PEERS move 5.5.1 and its source, for testing
# the skip and build-failure paths.)
likwid_table() {
    cat <<EOF
5.2.2  /usr               zen3 skx icx skl
5.5.1  ${LIKWID_HARNESS_PREFIX_551:-/opt/likwid-5.5.1}  zen3 zen4 zen5 skx icx spr emr gnr
EOF
}
peers=${LIKWID_HARNESS_PEERS:-$root/../shared/peers}

versions=() cpus=() only_groups="" record=0 keep=0
while [[ $# -gt 0 ]]; do
    case $1 in
        -l) versions+=("$2"); shift 2 ;;
        -c) cpus+=("$2"); shift 2 ;;
        -g) only_groups="${only_groups:+$only_groups,}$2"; shift 2 ;;
        --record) record=1; shift ;;
        --keep) keep=1; shift ;;
        *) echo "usage: $0 [-l VERSION]... [-c CPU]... [-g GROUP]... [--record] [--keep]" >&2; exit 2 ;;
    esac
done
[[ ${#versions[@]} -gt 0 ]] || read -ra versions <<<"$(likwid_table | awk '{ printf "%s ", $1 }')"

pass=0 fail=0 known=0 skipped=0
declare -A tally=()
report() {   # STATUS VERSION CPU NAME DETAIL
    printf '%-5s %-5s %-5s %-32s %s\n' "$1" "$2" "$3" "$4" "$5"
    local key="$2 $3"
    case $1 in
        PASS) pass=$((pass + 1)); tally[$key.p]=$((${tally[$key.p]:-0} + 1)) ;;
        FAIL) fail=$((fail + 1)); tally[$key.f]=$((${tally[$key.f]:-0} + 1)) ;;
        KNOWN) known=$((known + 1)); tally[$key.k]=$((${tally[$key.k]:-0} + 1)) ;;
    esac
}

# LIKWID 5.5.1 is built once per machine (flock: a concurrent harness run waits for the build).
build_likwid55() {   # PREFIX: 0 ready, 1 failed, 2 no source here
    local prefix=$1
    [[ -x $prefix/bin/likwid-perfctr ]] && return 0
    [[ -f $peers/build-likwid.sh && -f $peers/likwid-5.5.1.tar.gz ]] || return 2
    echo "building LIKWID 5.5.1 into $prefix (once per machine, about 2 minutes)"
    (
        flock 9
        [[ -x $prefix/bin/likwid-perfctr ]] ||
            nice bash "$peers/build-likwid.sh" "$peers/likwid-5.5.1.tar.gz" "$prefix" >/dev/null
    ) 9>/tmp/likwid-5.5.1-build.lock || return 1
    [[ -x $prefix/bin/likwid-perfctr ]] || return 1
}

# Which versions run: each one's prefix and tools must be there.
declare -A prefix_of=()
run_versions=()
for ver in "${versions[@]}"; do
    line=$(likwid_table | awk -v v="$ver" '$1 == v')
    if [[ -z $line ]]; then
        echo "unknown LIKWID version $ver (known: $(likwid_table | awk '{ printf "%s ", $1 }'))" >&2
        exit 2
    fi
    prefix=$(awk '{ print $2 }' <<<"$line")
    if [[ $ver == 5.5.1 ]]; then
        build_likwid55 "$prefix"
        case $? in
            1) report FAIL "$ver" "-" "build" "building LIKWID 5.5.1 from $peers failed"; continue ;;
            2)
                echo "SKIP: LIKWID 5.5.1: $peers (its release source) is not here and $prefix is not" \
                    "built: NOTHING TESTED AGAINST 5.5.1"
                skipped=$((skipped + 1))
                continue
                ;;
        esac
    elif [[ ! -x $prefix/bin/likwid-perfctr ]]; then
        skip "LIKWID $ver is not installed (apt-get install likwid)"
    fi
    for tool in likwid-perfctr likwid-genTopoCfg likwid-powermeter likwid-features; do
        [[ -x $prefix/bin/$tool ]] || skip "$prefix/bin/$tool is missing"
    done
    have=$("$prefix/bin/likwid-perfctr" -v 2>/dev/null | awk '/Version/ { print $4; exit }')
    if [[ $have != "$ver" ]]; then
        report FAIL "$ver" "-" "version" "$prefix/bin/likwid-perfctr says version '${have}', not $ver"
        continue
    fi
    prefix_of[$ver]=$prefix
    run_versions+=("$ver")
done
[[ ${#run_versions[@]} -gt 0 || $fail -gt 0 ]] || skip "no LIKWID version to run"

work=$(mktemp -d /tmp/likwid-harness.XXXXXX)
created_topo=0
cleanup() {
    # Never leave /etc/likwid_topo.cfg behind (LIKWID reads it when no /etc/likwid.cfg
    # exists): an empty one breaks every later LIKWID run on the host.
    if [[ $created_topo == 1 ]]; then rm -f /etc/likwid_topo.cfg; fi
    if [[ $keep == 0 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_table() { grep -v '^#' "$here/cpus.txt"; }
cpu_env() {   # VERSION NAME: shell assignments for that CPU, or failure when that version lacks it
    local line g52 g55 groups_dir
    line=$(cpu_table | awk -v n="$2" '$1 == n')
    [[ -n $line ]] || return 1
    read -r _ intel perf_version perf_num_ctr perf_num_fixed stepping sockets g52 g55 pci_units energy_metric \
        prefetch presets uncore <<<"$line"
    case $1 in 5.2.*) groups_dir=$g52 ;; *) groups_dir=$g55 ;; esac
    [[ $groups_dir == - ]] && return 1
    [[ $pci_units == - ]] && pci_units=
    [[ $energy_metric == - ]] && energy_metric=
    [[ $uncore == - ]] && uncore=
    presets=${presets//misc/0x1A0:0x80}
    [[ $presets == - ]] && presets=
    local energy_unit=0x000A0E03 energy_scale=j  # time 10, energy status unit 14 (61 uJ), power 3
    # LIKWID counts Silvermont model 0x37's energy in 2^ESU microjoules: ESU 0 there.
    [[ $2 == slm ]] && energy_unit=0x000A0003 energy_scale=uj
    if [[ $intel == 1 ]]; then
        rapl="rapl_unit_reg=0x606 rapl_unit=$energy_unit pkg_energy_reg=0x611 core_ctr_reg=0x309 core_event=INSTR_RETIRED_ANY"
    else
        rapl="rapl_unit_reg=0xC0010299 rapl_unit=$energy_unit pkg_energy_reg=0xC001029B core_ctr_reg=0xC0010201 core_event=RETIRED_INSTRUCTIONS"
    fi
    echo "intel=$intel perf_version=$perf_version perf_num_ctr=$perf_num_ctr perf_num_fixed=$perf_num_fixed"
    echo "stepping=$stepping sockets=$sockets perf_width=48 groups_dir=$groups_dir pci_units=${pci_units:-}"
    echo "energy_metric=${energy_metric:-} presets=${presets:-} prefetch=$prefetch energy_scale=$energy_scale"
    echo "uncore=${uncore:-} $rapl"
}
energy_delta=204801   # counts of 2^-14 J: 12.50006103515625 J
core_delta=123457
uncore_delta0=5123457 uncore_delta1=7654321   # per socket: a mixed-up socket shows

if unshare -m --propagation private sh -c \
    "mkdir -p $work/probe/u $work/probe/w && mount -t overlay overlay -o lowerdir=/etc,upperdir=$work/probe/u,workdir=$work/probe/w /etc" \
    2>/dev/null; then
    etc_mode=overlay
else
    etc_mode=bind
    if [[ ! -e /etc/likwid_topo.cfg ]]; then
        created_topo=1
        : >/etc/likwid_topo.cfg
    fi
fi
if ! grep -q LIKWID_ACCESS_TRACE "$rel/likwid-accessD"; then
    echo "FAIL: $rel/likwid-accessD has no LIKWID_ACCESS_TRACE switch (rebuild)"; echo "0 passed, 1 failed"; exit 1
fi

gap_keys=() gap_reasons=()
while read -r kver kcpu kname reason; do
    [[ -z ${kver:-} || $kver == \#* ]] && continue
    gap_keys+=("$kver/$kcpu/$kname")
    gap_reasons+=("$reason")
done <"$here/known-gaps.txt"
known_gap() {   # VERSION CPU NAME: the reason of the first known-gaps line matching (globs)
    local i
    for i in "${!gap_keys[@]}"; do
        # shellcheck disable=SC2053
        if [[ $1/$2/$3 == ${gap_keys[$i]} ]]; then echo "${gap_reasons[$i]}"; return; fi
    done
}

# judge VERSION CPU NAME: exit code, access errors and denials, stderr errors, `-` counters,
# register files versus the trace.
judge() {
    local ver=$1 cpu=$2 name=$3 d=$w/runs/$3 why=() rc errs out
    rc=$(cat "$d"/rc* | sort -u | tr '\n' ' ')
    # likwid-features 5.2.2 ends `-l` with os.exit(1) whatever happened.
    local want_rc="0 "
    [[ $name == features-list && $ver == 5.2.* ]] && want_rc="1 "
    [[ $rc == "$want_rc" ]] || why+=("exit $rc")
    local pci=""
    if [[ $name == perfctr-* && -n $pci_units ]]; then
        pci=$(awk -v re="$pci_units" '/^EVENTSET/ { on = 1; next } on && NF == 0 { on = 0 }
            on && $1 ~ re { printf "%s ", $1 }' "$groups_root/$groups_dir/${name#perfctr-}.txt")
    fi
    cat "$d/trace" | python3 "$here/regstore.py" errors /dev/stdin >"$d/trace-errors"
    errs=$(awk '$3 == 0 { printf "%s %s %s; ", $1, $4, $6 }' "$d/trace-errors")
    errs+=$(grep -E 'denied (read|write).* device=0 ' "$d/syslog" | head -3 | sed 's/^.*]: //' | tr '\n' ';')
    # PCI: CHECKs of devices the machine lacks are answered NODEV (LIKWID probes them all);
    # a read or write that fails on a device it was told exists is an error, and so is a denial.
    local pci_errs
    pci_errs=$(awk '$3 != 0 && $1 != "check" { printf "%s dev %s %s %s; ", $1, $3, $4, $6 }' "$d/trace-errors" |
        head -c 300)
    pci_errs+=$(grep -E 'denied (read|write)' "$d/syslog" | grep -v ' device=0 ' | head -2 | sed 's/^.*]: //' | tr '\n' ';')
    [[ -z $pci_errs ]] || why+=("uncore access errors: $pci_errs")
    [[ -z $errs ]] || why+=("MSR access errors: $errs")
    if cat "$d"/err* | grep -qiE 'error|failed|cannot'; then
        why+=("stderr: $(cat "$d"/err* | grep -iE 'error|failed|cannot' | head -2 | tr '\n' ' ')")
    fi
    # A counter LIKWID could not set up or read prints `-`, and the tool still exits 0.
    # A known gap of the form `dashes=REGEX reason` excuses only those counters' `-`; anything
    # else still fails the run.
    local gap only_dashes="" excused=""
    gap=$(known_gap "$ver" "$cpu" "$name")
    if [[ $gap == dashes=* ]]; then
        only_dashes=${gap%% *}
        only_dashes=${only_dashes#dashes=}
        gap=${gap#* }
    fi
    local dash
    for out in "$d"/out*; do
        dash=$(python3 "$here/regstore.py" dashes "$out" | awk '{ print $2 }')
        if [[ -n $only_dashes ]]; then
            excused+=$(grep -E "^($only_dashes)\$" <<<"$dash")
            dash=$(grep -vE "^($only_dashes)\$" <<<"$dash")
        fi
        dash=$(tr '\n' ' ' <<<"$dash")
        [[ -z ${dash// /} ]] || why+=("$(basename "$out"): counters printed '-': ${dash:0:200}")
    done
    # (The value runs' measured program itself advances registers after LIKWID's last write;
    # in a both-* run two clients program the same registers.)
    if [[ $name != value-* && $name != both-* ]] && ! grep -q ' 0 mismatches$' "$d/verify"; then
        why+=("register files after the run: $(head -3 "$d/verify" | tr '\n' ' ')")
    fi
    [[ -s $d/trace ]] || why+=("no request reached the daemon")
    local summary
    summary=$(tail -1 "$d/verify")
    if [[ -e $d/snap.n ]]; then
        if ! python3 "$here/regstore.py" verify-snapshot "$d/trace" "$(cat "$d/snap.n")" \
            "$d/snap.0" "$d/snap.1" >"$d/verify-snapshot"; then
            why+=("during the run: $(head -3 "$d/verify-snapshot" | tr '\n' ' ')")
        fi
        summary=$(tail -1 "$d/verify-snapshot")
    elif [[ $name == perfctr-* ]]; then
        why+=("the measured program did not run")
    fi
    if [[ $name == both-* ]]; then
        summary="LIKWID $(cat "$d/versions") at the same time: every counter measured"
        [[ -e $d/met ]] || why+=("the two clients' measured programs never ran at the same time")
    fi
    if [[ -n $only_dashes ]]; then
        if [[ ${#why[@]} -eq 0 && -n $excused ]]; then
            report KNOWN "$ver" "$cpu" "$name" "$(grep -c . <<<"$excused") counters ($(head -1 <<<"$excused") ...) printed '-': $gap"
        elif [[ ${#why[@]} -eq 0 ]]; then
            report PASS "$ver" "$cpu" "$name" "$summary"
        else
            report FAIL "$ver" "$cpu" "$name" "${why[*]} (output in $d)"
        fi
        return
    fi
    if [[ -n $pci && -z $gap ]]; then
        why+=("counts with PCI/MMIO units ($pci) that this daemon cannot serve yet, but tests/likwid/known-gaps.txt does not list it")
    fi
    if [[ ${#why[@]} -eq 0 && -z $gap ]]; then
        report PASS "$ver" "$cpu" "$name" "$summary"
    elif [[ -n $gap ]]; then
        # A known gap may not hide an MSR error: those are table bugs.
        if [[ -n $errs ]]; then
            report FAIL "$ver" "$cpu" "$name" "known gap ($gap) but ${why[*]}"
        else
            report KNOWN "$ver" "$cpu" "$name" "$gap"
        fi
    else
        report FAIL "$ver" "$cpu" "$name" "${why[*]} (output in $d)"
    fi
}

# A value LIKWID printed in a table row: row_value FILE ROW-LABEL COLUMN
row_value() {
    awk -F'|' -v label="$2" -v col="$3" '
        { l = $2; gsub(/^ +| +$/, "", l) } l == label { v = $col; gsub(/ /, "", v); print v; exit }' "$1"
}

check_close() {   # VERSION CPU NAME WHAT GOT WANT TOLERANCE
    if python3 -c "import sys; g, w, t = sys.argv[1:4]; sys.exit(0 if abs(float(g) - float(w)) <= float(t) else 1)" \
        "$5" "$6" "$7" 2>/dev/null; then
        report PASS "$1" "$2" "$3" "$4 printed $5, expected $6"
    else
        report FAIL "$1" "$2" "$3" "$4 printed '${5}', expected $6 (±$7)"
        keep=1
    fi
}

# A 2-socket topology file from the host's with 2 hardware threads: thread N alone on socket N
# (core 0 there, its own caches) and in NUMA node N (LIKWID's affinity domains need both).
two_sockets() {
    awk '
        /^cpuid_topology numSockets = / { print "cpuid_topology numSockets = 2"; next }
        # LIKWID 5.5.1 makes numDies / numSockets die domains per socket (src/affinity.c).
        /^cpuid_topology numDies = / { print "cpuid_topology numDies = 2"; next }
        /^cpuid_topology numCoresPerSocket = / { print "cpuid_topology numCoresPerSocket = 1"; next }
        /^cpuid_topology numThreadsPerCore = / { print "cpuid_topology numThreadsPerCore = 1"; next }
        /^cpuid_topology threadPool [0-9]+ coreId = / { sub(/= .*/, "= 0"); print; next }
        /^cpuid_topology threadPool [0-9]+ packageId = / { n = $3; sub(/= .*/, "= " n); print; next }
        /^cpuid_topology cacheLevels [0-9]+ threads = / { sub(/= .*/, "= 1"); print; next }
        /^numa_info nodes 1 totalMemory = / { total = $NF }
        /^numa_info nodes 1 freeMemory = / { free = $NF }
        /^numa_info / { next }
        { print }
        END {
            print "numa_info numberOfNodes = 2"
            for (n = 1; n <= 2; n++) {
                p = "numa_info nodes " n
                print p " id = " n - 1
                print p " numberOfProcessors = 1"
                print p " processors 1 = " n - 1
                print p " totalMemory = " int(total / 2)
                print p " freeMemory = " int(free / 2)
                print p " numberOfDistances = 2"
                print p " distances 0 = " (n == 1 ? 10 : 20)
                print p " distances 1 = " (n == 2 ? 10 : 20)
            }
        }'
}

started=$(date +%s)
# Prepare every (version, CPU), run two namespaces at a time (most of a run is waiting), judge
# in order.
ready=()
for ver in "${run_versions[@]}"; do
    prefix=${prefix_of[$ver]}
    if [[ ${#cpus[@]} -gt 0 ]]; then
        ver_cpus=("${cpus[@]}")
    else
        read -ra ver_cpus <<<"$(likwid_table | awk -v v="$ver" '$1 == v { $1 = $2 = ""; print }')"
    fi
    "$prefix/bin/likwid-genTopoCfg" -o "$work/host-topo-$ver.cfg" >/dev/null 2>&1
    if [[ ! -s $work/host-topo-$ver.cfg ]]; then
        report FAIL "$ver" "-" "setup" "likwid-genTopoCfg wrote no topology file"
        continue
    fi
    for cpu in "${ver_cpus[@]}"; do
        w=$work/$ver/$cpu
        if ! env_line=$(cpu_env "$ver" "$cpu"); then
            if cpu_table | awk -v n="$cpu" '$1 == n { f = 1 } END { exit !f }'; then
                echo "note: LIKWID $ver is not run on $cpu (tests/likwid/cpus.txt)"
            else
                report FAIL "$ver" "$cpu" "setup" "unknown CPU (known: $(cpu_table | awk '{ printf "%s ", $1 }'))"
            fi
            continue
        fi
        mkdir -p "$w/wrap" "$w/runs"
        # Where both versions know this 2-socket CPU, the newer one's namespace also runs the
        # older one at the same time (one daemon each, numbered per client).
        both=""
        if [[ $ver != 5.2.2 && -n ${prefix_of[5.2.2]:-} ]] && cpu_env 5.2.2 "$cpu" >/dev/null &&
            grep -q 'sockets=2 ' <<<"$env_line"; then
            both=${prefix_of[5.2.2]}
        fi
        ready+=("$ver/$cpu")
        set -f   # the words hold regular expressions
        # shellcheck disable=SC2086
        for word in $env_line "energy_delta=$energy_delta" "core_delta=$core_delta" \
            "uncore_delta0=$uncore_delta0" "uncore_delta1=$uncore_delta1" "likwid_version=$ver" \
            "likwid_prefix=$prefix" "groups_root=$prefix/share/likwid/perfgroups" "both_prefix=$both"; do
            printf '%s=%q\n' "${word%%=*}" "${word#*=}"
        done >"$w/cpu.env"
        set +f
        # shellcheck source=/dev/null
        source "$w/cpu.env"
        if ! "$rel/likwid-access" sim "$w/m" --cpu "$cpu" --cpus 2 --sockets "$sockets" >/dev/null; then
            report FAIL "$ver" "$cpu" "setup" "likwid-access sim --cpu $cpu --sockets $sockets failed"
            unset 'ready[-1]'
            continue
        fi
        family=$(awk -F: '/^cpu family/ { print $2 + 0; exit }' "$w/m/proc/cpuinfo")
        model=$(awk -F: '/^model[ \t]*:/ { print $2 + 0; exit }' "$w/m/proc/cpuinfo")
        printf 'family=%s\nmodel=%s\n' "$family" "$model" >>"$w/cpu.env"
        likwid_topo "$family" "$model" "$stepping" "$intel" "$perf_version" "$perf_num_ctr" "$perf_num_fixed" \
            "$perf_width" "likwid-access simulated $cpu" <"$work/host-topo-$ver.cfg" |
            if [[ $sockets == 2 ]]; then two_sockets; else cat; fi >"$w/likwid_topo.cfg"
        # LIKWID starts its daemon with an empty environment (LIKWID 5.5.1 src/access_client.c,
        # access_client_startDaemon_direct: execve with newenv = {NULL}): the wrapper adds ours.
        {
            echo '#!/bin/sh'
            echo "LIKWID_ACCESS_TRACE='$w/trace.cur' exec '$rel/likwid-accessD' \"\$@\""
        } >"$w/wrap/likwid-accessD"
        chmod 0755 "$w/wrap/likwid-accessD"
    done
done
# Most of a run is waiting (LIKWID's start, the measured program's pauses): three namespaces at
# a time on 2 vCPUs (LIKWID_HARNESS_JOBS to change it).
jobs_running=0 jobs_max=${LIKWID_HARNESS_JOBS:-3}
for vc in "${ready[@]}"; do
    if [[ $jobs_running -ge $jobs_max ]]; then wait -n; jobs_running=$((jobs_running - 1)); fi
    unshare -m --propagation private "$0" --inner "${vc#*/}" "$work/$vc" "$etc_mode" "$only_groups" \
        >"$work/$vc/inner.log" 2>&1 &
    jobs_running=$((jobs_running + 1))
done
wait
for vc in "${ready[@]}"; do
    ver=${vc%%/*} cpu=${vc#*/}
    w=$work/$vc
    # shellcheck source=/dev/null
    source "$w/cpu.env"
    if [[ ! -s $w/groups ]]; then
        report FAIL "$ver" "$cpu" "likwid-perfctr -a" "listed no groups: $(head -3 "$w/groups.list" 2>/dev/null | tr '\n' ' ')"
        keep=1
        continue
    fi

    for d in "$w"/runs/*/; do
        name=$(basename "$d")
        judge "$ver" "$cpu" "$name"
        if [[ $record == 1 && $name == perfctr-* ]]; then
            mkdir -p "$here/traces/$cpu"
            suffix=""
            [[ $ver == 5.2.2 ]] || suffix="@$ver"
            {
                echo "# $cpu ${name#perfctr-}: likwid-perfctr -M 1 -C 0-1 -g ${name#perfctr-} (LIKWID $ver)"
                echo "# op cpu device reg data code; unique accesses (reads: data not kept)"
                python3 "$here/regstore.py" dedupe "$d/trace"
            } >"$here/traces/$cpu/${name#perfctr-}$suffix.trace"
        fi
    done

    if [[ -z $only_groups && -n $energy_metric ]]; then
        # The values LIKWID printed are the ones the measured program added.
        unit_bits=$(( (rapl_unit >> 8) & 0x1F ))
        if [[ $energy_scale == uj ]]; then
            unit_j=$(python3 -c "print(2**$unit_bits / 1e6)")
        else
            unit_j=$(python3 -c "print(1 / 2**$unit_bits)")
        fi
        want_j=$(python3 -c "print($energy_delta * $unit_j)")
        tol=$(python3 -c "print(1e-4 + $unit_j)")
        got=$(row_value "$w/runs/value-perfctr/out" "${energy_metric//_/ }" 3)
        check_close "$ver" "$cpu" "value-perfctr-energy" "${energy_metric//_/ }" "${got:-none}" "$want_j" "$tol"
        got=$(row_value "$w/runs/value-perfctr/out" "$core_event" 4)
        check_close "$ver" "$cpu" "value-perfctr-$core_event" "$core_event" "${got:-none}" "$core_delta" 0.5
        got=$(awk '/^Domain PKG:/ { pkg = 1 } pkg && /^Energy consumed:/ { print $3; exit }' \
            "$w/runs/value-powermeter/out")
        check_close "$ver" "$cpu" "value-powermeter" "Energy consumed" "${got:-none}" "$want_j" "$tol"
    fi
    if [[ -z $only_groups && -n $uncore ]]; then
        # One uncore counter per socket, advanced in the simulated device while LIKWID measured
        # (columns: HWThread 0 on socket 0, HWThread 1 on socket 1).
        IFS=: read -r kind event counter <<<"$uncore"
        for s in 0 1; do
            want_var=uncore_delta$s
            got=$(row_value "$w/runs/value-uncore/out" "$event" $((4 + s)))
            check_close "$ver" "$cpu" "value-uncore-$kind-socket$s" "$event $counter" "${got:-none}" "${!want_var}" 0.5
        done
    fi
    if [[ -z $only_groups ]]; then
        if [[ $prefetch == 1a4 ]]; then
            # likwid-features: each -d/-e changes exactly its prefetcher bit in MSR 0x1A4.
            i=0 expect=0 bit=0
            for pf in HW_PREFETCHER CL_PREFETCHER DCU_PREFETCHER IP_PREFETCHER; do
                for act in d e; do
                    prev=$w/features.$i
                    i=$((i + 1))
                    if [[ $act == d ]]; then expect=$((expect | (1 << bit))); else expect=$((expect & ~(1 << bit))); fi
                    diff_out=$(diff <(grep -v '^0x1a4 ' "$prev") <(grep -v '^0x1a4 ' "$w/features.$i"))
                    have=$(awk '$1 == "0x1a4" { print $2 }' "$w/features.$i")
                    have=$((${have:-0}))
                    name=features-$act-$pf-file
                    gap=$(known_gap "$ver" "$cpu" "$name")
                    if [[ -n $diff_out ]]; then
                        report FAIL "$ver" "$cpu" "$name" "registers other than 0x1A4 changed: $(echo "$diff_out" | head -4 | tr '\n' ' ')"
                    elif [[ $have != "$expect" && -n $gap ]] &&
                        grep -q "^write 0 0 0x1a4 $(printf %#x $expect) NOERROR" \
                            "$w/runs/features-$act-$pf/trace"; then
                        report KNOWN "$ver" "$cpu" "$name" "$gap (LIKWID's write $(printf %#x $expect) was served)"
                    elif [[ $have != "$expect" ]]; then
                        report FAIL "$ver" "$cpu" "$name" "MSR 0x1A4 is $(printf %#x $have), expected $(printf %#x $expect)"
                    else
                        report PASS "$ver" "$cpu" "$name" "MSR 0x1A4 = $(printf %#x $have)"
                    fi
                    # The state LIKWID left, whatever the daemon did afterwards, is the next base.
                    expect=$have
                done
                bit=$((bit + 1))
            done
        fi
    fi
done

if [[ $fail -gt 0 ]]; then keep=1; fi
elapsed=$(($(date +%s) - started))
echo
echo "LIKWID  CPU    passed failed known"
for vc in "${ready[@]}"; do
    key="${vc%%/*} ${vc#*/}"
    printf '%-7s %-6s %6d %6d %5d\n' "${vc%%/*}" "${vc#*/}" "${tally[$key.p]:-0}" "${tally[$key.f]:-0}" "${tally[$key.k]:-0}"
done
echo "work directory: $work$([[ $keep == 0 ]] && echo ' (removed)'); run time $elapsed s"
# Known gaps and skipped versions count as skipped: the closing line CI reads is
# "N passed, N failed[, N skipped]".
skipped=$((skipped + known))
echo "$pass passed, $fail failed$([[ $skipped -gt 0 ]] && echo ", $skipped skipped")"
[[ $fail == 0 ]]
