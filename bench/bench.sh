#!/usr/bin/env bash
# make bench: ours vs Debian's likwid-accessD vs the machine's floors (a bare AF_UNIX ping-pong
# and a direct pread), in one run (bench/bench.c). As root it builds a private /dev/cpu of
# register-store files and the host CPU's simulated /proc/cpuinfo in a mount namespace: Debian's
# daemon picks its register rules by CPUID on the host, so the simulated CPU must be the host's
# (c-tests/host-cpu.sh). Without root or LIKWID it measures ours and the floors only, and says
# loudly that the LIKWID column was skipped. Then: callgrind instructions per batched read, and
# the start-up's system calls on 2 and on 256 CPUs (strace -c).
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The memory floor (bench/floor-rust.rs): a Rust program built as cargo builds the daemon (the
# release profile's flags, the link arguments build.rs gives the daemon: its linker script and
# DT_RELR; PIE and full RELRO are rustc's defaults here) that only echoes records on its socket.
rustc --edition=2021 -C opt-level=3 -C embed-bitcode=no -C debuginfo=1 bench/floor-rust.rs \
    -C link-arg=-Wl,-T,"$PWD/src/bin/likwid-accessD.ld" -C link-arg=-Wl,-z,pack-relative-relocs -o "$tmp/floor-rust"
export BENCH_FLOOR_RUST=$tmp/floor-rust
# A binary just linked has dirty page-cache pages until written back, and smaps counts those
# as Private_Dirty (the floor program just built: 228-324 kB Private_Dirty, 108-116 kB once
# written back): write them back first.
sync "$rel/likwid-accessD" "$rel/liblikwid_access.so" "$tmp/floor-rust" ${BENCH_BEFORE:+"$BENCH_BEFORE"}
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude bench/bench.c -L"$rel" -llikwid_access \
   -Wl,-rpath,"$rel" -o "$tmp/bench"
mkdir "$tmp/floor"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic bench/floor-daemon.c -o "$tmp/floor/likwid-accessD"
source c-tests/host-cpu.sh
if host_cpu; then
    sim=$host_sim
else
    sim=zen3 host_vendor=
    echo "LIKWID column SKIPPED: no built-in table for this host's CPU, which Debian's daemon would serve." >&2
fi
# A counter register both daemons let a client read on this vendor: IA32_PMC0 / PERF_CTR0.
if [ "${host_vendor:-amd}" = intel ]; then reg=0xC1; else reg=0xC0010201; fi
# A control register under a write mask (a write reads it first): IA32_PERF_GLOBAL_CTRL, PERF_CTL0.
if [ "${host_vendor:-amd}" = intel ]; then wreg=0x38F; else wreg=0xC0010200; fi
"$rel/likwid-access" sim "$tmp/m" --cpu "$sim" --cpus 2 >/dev/null
# A big site: 256 CPUs on 2 sockets with their uncore PCI devices, padded with other functions
# to 600, which the daemon may see but never serves. The worst case for its filter: every
# padding function sits at a device/function slot the uncore uses, on other buses, with Intel's
# vendor id and a device id it does not serve. Each is listed in proc/bus/pci/devices as the
# kernel lists every function; without that list (or one that disagrees with sysfs) each
# would cost reading its vendor and device files.
"$rel/likwid-access" sim "$tmp/big" --cpu skx --cpus 256 --sockets 2 >/dev/null
"$rel/likwid-access" sim "$tmp/bigu" --cpu skx --cpus 256 --sockets 2 >/dev/null
pci=$tmp/big/sys/bus/pci/devices
uncore=$(ls "$pci" | wc -l)
slots=($(ls "$pci" | sed 's/^.*:\([0-9a-f]*\.[0-7]\)$/\1/' | sort -u))
for ((i = 0; i < 600 - uncore; i++)); do
    bus=$((0x40 + i / ${#slots[@]})) slot=${slots[i % ${#slots[@]}]}
    d=$pci/$(printf '0000:%02x:%s' $bus "$slot")
    mkdir "$d"
    echo 0x8086 >"$d/vendor"
    echo 0x2021 >"$d/device"
    echo 0 >"$d/numa_node"
    truncate -s 256 "$d/config"
    # The kernel lists every function in /proc/bus/pci/devices too (bus, devfn, vendor, device).
    printf '%02x%02x\t80862021\t0\n' $bus $((0x${slot%.*} << 3 | ${slot#*.})) >>"$tmp/big/proc/bus/pci/devices"
done
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "LIKWID: $(dpkg-query -W -f='${Package} ${Version}' likwid 2>/dev/null || echo unknown); simulated CPU: $sim; register $reg"
echo "big site: 256 CPUs, $(ls "$pci" | wc -l) PCI functions ($uncore of them uncore units)"
echo
export BENCH_SIM2=$tmp/m BENCH_SIM256=$tmp/big BENCH_SIM256U=$tmp/bigu
# BENCH_CALLGRIND=1: only the callgrind instruction counts and where they go (seconds, and
# stable on a busy machine: what a change to the request path is measured with).
# BENCH_STARTS=ROUNDS: only the start-ups (ours, BENCH_BEFORE's), on the simulated roots, and exit.
if [ -n "${BENCH_STARTS:-}" ]; then
    "$tmp/bench" starts $reg "$BENCH_STARTS" "$rel/likwid-accessD" ${BENCH_BEFORE:+"$BENCH_BEFORE"}
    exit
fi
likwid=/usr/sbin/likwid-accessD
# The service's config directory must exist to mount a private one over it; /etc is the
# host's even in the namespace, so only an empty directory made here is removed again.
made_etc=
if [ -z "${BENCH_CALLGRIND:-}" ] && [ "$(id -u)" = 0 ] && [ ! -d /etc/likwid-access ]; then
    mkdir -m 0755 /etc/likwid-access && made_etc=1
fi
trap 'rm -rf "$tmp"; [ -n "$made_etc" ] && rmdir /etc/likwid-access 2>/dev/null; true' EXIT
if [ -n "${BENCH_CALLGRIND:-}" ]; then
    echo "BENCH_CALLGRIND: instruction counts only (no timed rows, no system call counts)."
elif [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || [ ! -x $likwid ] || [ -z "$host_vendor" ]; then
    echo "LIKWID column SKIPPED: needs root, unshare, a host CPU with a built-in table and Debian's $likwid (apt-get install likwid)." >&2
    if [ -n "${BENCH_MEM:-}" ]; then
        LIKWID_ACCESS_ROOT=$tmp/m "$tmp/bench" mem $reg "$rel/likwid-accessD"
        exit
    fi
    LIKWID_ACCESS_ROOT=$tmp/m "$tmp/bench" run "$tmp/m/dev/cpu/0/msr" $reg "$rel/likwid-accessD"
else
    unshare -m --propagation private bash -euc '
        tmp=$1
        source "$5"
        private_dev "$tmp" 2
        mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
        # BENCH_MEM=1: the private memory figures only (ours, the floor, LIKWID), in seconds.
        if [ -n "${BENCH_MEM:-}" ]; then
            "$tmp/bench" mem $4 "$2" "$3"
            exit
        fi
        # Service mode (likwid-accessD --service, as a site runs it) beside the spawned daemons:
        # its socket and config on private tmpfs mounts; root may read and write.
        service=
        if [ -d /etc/likwid-access ]; then
            mount -t tmpfs -o mode=0755 none /run
            mount -t tmpfs -o mode=0755 none /etc/likwid-access
            printf "user root read-write\ndefault none\n" >/etc/likwid-access/service.conf
            chmod 0644 /etc/likwid-access/service.conf
            # A copy of the daemon: two processes mapping one executable would share its pages,
            # and the spawned daemons would then look smaller by the presence of the service.
            cp "$2" "$tmp/likwid-accessD-service"
            "$tmp/likwid-accessD-service" --service 2>"$tmp/service.err" & service=$!
            for _ in $(seq 250); do
                "$(dirname "$2")/likwid-access" service status >/dev/null 2>&1 && break
                sleep 0.02
            done
        fi
        BENCH_SERVICE=${service:+1} "$tmp/bench" run /dev/cpu/0/msr "$4" "$2" "$3"
        if [ -n "$service" ]; then
            kill "$service"
            wait "$service" || true
            umount /etc/likwid-access /run
        fi
        # LIKWID timeline mode: `likwid-perfctr -t 100ms` reads every counter of the group on
        # every CPU once per interval, one record per register (BRANCH on 2 CPUs: 12 records,
        # per CPU read and write IA32_PERF_GLOBAL_CTRL, read 3 counters, write it again);
        # LIKWID runs `which likwid-accessD`, so PATH picks the daemon: ours, LIKWID'\''s, or the
        # floor (bench/floor-daemon.c: the same pread or pwrite per record, no checks at all).
        mkdir "$tmp/ours" "$tmp/theirs"
        ln -s "$2" "$tmp/ours/likwid-accessD"
        ln -s "$3" "$tmp/theirs/likwid-accessD"
        ratio() { awk -v a="$1" -v b="$2" '\''BEGIN { printf "%.2f", a / b }'\''; }
        median_of() { # WHO FILE: median of the values of WHO
            awk -v who="$1" '\''$1 == who { print $2 }'\'' "$2" | sort -n | awk '\''{ v[NR] = $1 } END { printf "%.4f %d", v[int((NR + 1) / 2)], NR }'\''
        }
        # LIKWID 5.2.2 sleeps 100 ms minus the time its last interval took (twork in
        # likwid-perfctr'\''s timeline loop), so its time column advances by the sleep'\''s overshoot
        # whatever the daemon costs. The work is timed instead: from the end of one of those
        # sleeps to the start of the next, by strace with a seccomp filter (only clock_nanosleep
        # stops; its stops add the same few microseconds whichever daemon answers).
        if command -v strace >/dev/null; then
            for round in 1 2 3; do
                for who in ours theirs floor; do
                    PATH=$tmp/$who:$PATH strace -f --seccomp-bpf -ttt -T -e trace=clock_nanosleep -o "$tmp/sleeps" \
                        likwid-perfctr -M 1 -C 0,1 -g BRANCH -t 100ms sleep 3 >/dev/null 2>&1
                    awk -v who=$who '\''
                        /clock_nanosleep\(/ && /tv_sec=0, tv_nsec=[5-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]}/ {
                            if ($1 in done) print who, ($2 - done[$1]) * 1000
                            start[$1] = $2
                            if (/unfinished/) { pending[$1] = 1; next }
                            d = $NF; gsub(/[<>]/, "", d); done[$1] = $2 + d; next
                        }
                        /clock_nanosleep resumed/ && ($1 in pending) {
                            d = $NF; gsub(/[<>]/, "", d); done[$1] = start[$1] + d; delete pending[$1]
                        }'\'' "$tmp/sleeps" >>"$tmp/work522"
                done
            done
            read -r o on <<<"$(median_of ours "$tmp/work522")"
            read -r t tn <<<"$(median_of theirs "$tmp/work522")"
            read -r f fn <<<"$(median_of floor "$tmp/work522")"
            echo
            echo "LIKWID 5.2.2 likwid-perfctr -M 1 -C 0,1 -g BRANCH -t 100ms, median work per interval (end of one sleep to the next, strace):"
            echo "  ours: $o ms ($on intervals); LIKWID daemon: $t ms ($tn); floor daemon: $f ms ($fn); ours/LIKWID $(ratio "$o" "$t") (<= 0.8)"
            echo "  beyond the floor: ours $(awk -v a="$o" -v f="$f" '\''BEGIN { printf "%.4f", a - f }'\'') ms, LIKWID $(awk -v a="$t" -v f="$f" '\''BEGIN { printf "%.4f", a - f }'\'') ms"
        else
            echo "LIKWID 5.2.2 timeline SKIPPED: no strace (apt-get install strace)."
        fi
        # LIKWID 5.5.1 (built from ../shared/peers): on the register store its timeline loop
        # does not sleep (it times intervals from the simulated clock, which never advances:
        # its time column prints inf), so it reads interval after interval back to back; the
        # number of intervals in a run gives the time of one, through ours and its daemon.
        l551=/opt/likwid-5.5.1
        if [ -x $l551/bin/likwid-perfctr ] && [ -x $l551/sbin/likwid-accessD ]; then
            mkdir "$tmp/theirs551"
            ln -s $l551/sbin/likwid-accessD "$tmp/theirs551/likwid-accessD"
            # Many short runs, interleaved: the mean of a run takes whatever else the machine did
            # during it, so the median (and the fastest run) of 15 says more than 5 long ones.
            for round in $(seq 15); do
                for who in ours theirs551 floor; do
                    PATH=$tmp/$who:$l551/bin:$PATH likwid-perfctr -M 1 -C 0,1 -g BRANCH -t 100ms sleep 0.5 \
                        2>"$tmp/tl551" >/dev/null
                    awk -v who=$who '\''$1 == 1 && NF > 5 { n++ } END { printf "%s %.4f\n", who, 500 / n }'\'' "$tmp/tl551" >>"$tmp/per551"
                done
            done
            read -r o _ <<<"$(median_of ours "$tmp/per551")"
            read -r t _ <<<"$(median_of theirs551 "$tmp/per551")"
            read -r f _ <<<"$(median_of floor "$tmp/per551")"
            fastest() { awk -v who="$1" '\''$1 == who { print $2 }'\'' "$tmp/per551" | sort -n | head -n1; }
            echo "LIKWID 5.5.1 likwid-perfctr -M 1 -C 0,1 -g BRANCH -t 100ms (no sleep on the register store), ms per interval, median of 15 runs of 0.5 s:"
            echo "  ours: $o ms; LIKWID 5.5.1 daemon: $t ms; floor daemon: $f ms; ours/LIKWID $(ratio "$o" "$t") (<= 0.8); floor/LIKWID $(ratio "$f" "$t")"
            echo "  fastest run: ours $(fastest ours) ms, LIKWID $(fastest theirs551) ms, floor $(fastest floor) ms"
            echo "  beyond the floor: ours $(awk -v a="$o" -v f="$f" '\''BEGIN { printf "%.4f", a - f }'\'') ms, LIKWID $(awk -v a="$t" -v f="$f" '\''BEGIN { printf "%.4f", a - f }'\'') ms"
        else
            echo "LIKWID 5.5.1 timeline SKIPPED: no /opt/likwid-5.5.1 (tests/likwid/harness.sh builds it)."
        fi
    ' bench "$tmp" "$rel/likwid-accessD" "$likwid" $reg "$(realpath c-tests/private-dev.sh)"
fi

[ -n "${BENCH_MEM:-}" ] && exit
# Instructions per batched read in our code (client library + daemon, user space; the kernel's
# share is not counted): callgrind on 2 and on 22 batches of 1024, the difference per read.
export LIKWID_ACCESSD=$rel/likwid-accessD LIKWID_ACCESS_ROOT=$tmp/m
if command -v valgrind >/dev/null; then
    total() { # FILE: instructions counted in it
        sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$1" | head -n1
    }
    pick() { # DIR daemon|client: the profile of that process
        for f in "$1"/*; do
            if grep -q "^cmd:.*likwid-accessD" "$f"; then [ "$2" = daemon ] && echo "$f"; else [ "$2" = client ] && echo "$f"; fi
        done
    }
    cg_runs() { # DAEMON LABEL: profiles of 2 and 22 batches, 2 000 and 22 000 single reads and writes, a start
        for n in 2 22; do
            mkdir "$tmp/cg$n$2" "$tmp/cgs$n$2" "$tmp/cgw$n$2"
            LIKWID_ACCESSD=$1 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cgw$n$2/%p" -q \
                "$tmp/bench" cgw $wreg $n
            LIKWID_ACCESSD=$1 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg$n$2/%p" -q \
                "$tmp/bench" cg $reg $n
            LIKWID_ACCESSD=$1 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cgs$n$2/%p" -q \
                "$tmp/bench" cgs $reg $n
        done
        if [ "$sim" = skx ]; then
            for n in 2 22; do
                mkdir "$tmp/cgp$n$2"
                LIKWID_ACCESSD=$1 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cgp$n$2/%p" \
                    -q "$tmp/bench" cgp $reg $n
            done
        fi
        mkdir "$tmp/cgstart$2"
        LIKWID_ACCESSD=$1 valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cgstart$2/%p" -q \
            "$tmp/bench" start $reg
    }
    cg_report() { # LABEL TEXT: instructions per read and at start-up
        echo "Instructions per read in batches of 1024 (callgrind, (22 - 2 batches) / 20480 reads)$2:"
        for who in client daemon; do
            a=$(total "$(pick "$tmp/cg2$1" $who)") b=$(total "$(pick "$tmp/cg22$1" $who)")
            echo "  $who: $(((b - a) / 20480)) instructions per read (start-up and 2 batches: $a)"
        done
        echo "Instructions per single read (callgrind, (22 000 - 2 000 reads) / 20 000)$2:"
        for who in client daemon; do
            a=$(total "$(pick "$tmp/cgs2$1" $who)") b=$(total "$(pick "$tmp/cgs22$1" $who)")
            echo "  $who: $(((b - a) / 20000)) instructions per read"
        done
        echo "Instructions per single masked write, register $wreg (callgrind, (22 000 - 2 000 writes) / 20 000)$2:"
        for who in client daemon; do
            a=$(total "$(pick "$tmp/cgw2$1" $who)") b=$(total "$(pick "$tmp/cgw22$1" $who)")
            echo "  $who: $(((b - a) / 20000)) instructions per write"
        done
        if [ -d "$tmp/cgp2$1" ]; then
            a=$(total "$(pick "$tmp/cgp2$1" daemon)") b=$(total "$(pick "$tmp/cgp22$1" daemon)")
            echo "Instructions per PCI read in batches of 1024 (iMC counters, skx)$2: daemon $(((b - a) / 20480))"
        fi
        echo "Daemon start-up to its first reply on 2 CPUs$2: $(total "$(pick "$tmp/cgstart$1" daemon)") instructions"
    }
    cg_runs "$rel/likwid-accessD" ""
    echo
    if [ -n "${BENCH_BEFORE:-}" ]; then
        cg_runs "$BENCH_BEFORE" "-before"
        cg_report -before " (before: BENCH_BEFORE)"
    fi
    cg_report "" ""
    top() { # FILE N: the N functions with the most instructions of their own (lines summed)
        callgrind_annotate --inclusive=no --auto=no "$1" 2>/dev/null | awk -v n="$2" '
            /PROGRAM TOTALS/ { all = $1; gsub(",", "", all); next }
            /^ *[0-9,]+ +\(/ {
                c = $1; gsub(",", "", c); f = $0
                sub(/^ *[0-9,]+ +\([ 0-9.%]*\) +/, "", f); sub(/ \[.*$/, "", f); sub(/^[^:]*:/, "", f)
                sum[f] += c
            }
            END { for (f in sum) printf "%12d %5.1f%%  %s\n", sum[f], 100 * sum[f] / all, f }' |
            sort -n -r | awk -v n="$2" 'NR <= n'
    }
    echo "Where the daemon's instructions go (22 batches incl. start-up, own instructions, top 12):"
    top "$(pick "$tmp/cg22" daemon)" 12
    echo "Where the client's instructions go (22 batches incl. start-up, own instructions, top 8):"
    top "$(pick "$tmp/cg22" client)" 8
    echo "Where the daemon's instructions go, 22 000 single reads (top 8):"
    top "$(pick "$tmp/cgs22" daemon)" 8
    # Start-up: the daemon's instructions from exec to exit after one read, inclusive (a
    # function with everything it calls), our functions only.
    f=$(pick "$tmp/cgstart" daemon)
    echo "Where the daemon's start-up instructions go (inclusive, top 8 of ours):"
    callgrind_annotate --inclusive=yes --auto=no "$f" 2>/dev/null |
        awk '/^ *[0-9,]+ +\(/ && /likwid_access::/ && / \[/ { c = $1; f = $0
                sub(/^ *[0-9,]+ +\([ 0-9.%]*\) +[^:]*:/, "", f); sub(/ \[.*$/, "", f)
                if (!(f in seen)) { seen[f] = 1; printf "  %12s  %s\n", c, f } }' | head -n 9 | tail -n 8
else
    echo "callgrind SKIPPED: no valgrind (apt-get install valgrind)." >&2
fi

# BENCH_CALLGRIND=1: only the instruction counts above.
[ -n "${BENCH_CALLGRIND:-}" ] && exit

# Where start-up goes: the system calls of spawn-to-first-reply (both processes) on 2 CPUs and
# on the big site. strace slows every call; compare the counts, not its times.
if command -v strace >/dev/null; then
    for root in m big; do
        LIKWID_ACCESS_ROOT=$tmp/$root strace -f -c -o "$tmp/strace.$root" "$tmp/bench" start $reg
        echo
        echo "System calls from spawn to first reply, $root ($([ $root = m ] && echo 2 || echo 256) CPUs), top 8 by count:"
        sed -n '/^-----/,/^-----/p' "$tmp/strace.$root" | grep -v '^-----' | sort -k4 -n -r | head -n 8 |
            awk '{ printf "  %-16s %6s calls  %s s\n", $NF, $4, $2 }'
        awk '/ total$/ { printf "  total            %6s calls\n", $4 }' "$tmp/strace.$root"
        if [ -n "${BENCH_BEFORE:-}" ]; then
            LIKWID_ACCESSD=$BENCH_BEFORE LIKWID_ACCESS_ROOT=$tmp/$root strace -f -c -o "$tmp/strace-before.$root" \
                "$tmp/bench" start $reg
            awk '/ total$/ { printf "  total, before     %6s calls\n", $4 }' "$tmp/strace-before.$root"
        fi
    done
fi

# A start-up timeline from the same trace tool (strace -f -ttt; it slows each system call by
# microseconds, so phases rich in calls look longer than they are): where the milliseconds go.
if command -v strace >/dev/null; then
    echo
    echo "Start-up timeline under strace (ms from the application's exec):"
    printf '  %-6s %8s %8s %8s %8s %8s %8s %8s %8s\n' sim spawn exec main pci0 pci1 msr0 msr1 greeting
    for root in m big; do
        LIKWID_ACCESS_ROOT=$tmp/$root strace -f -ttt -o "$tmp/trace.$root" "$tmp/bench" start $reg
        awk -v name=$root '
            NR == 1 { t0 = $2 }
            /CLONE_VFORK/ && !spawn { spawn = $2 }
            /execve\(".*likwid-accessD"/ { d = $1; exec = $2 }
            d && $1 == d && /proc\/cpuinfo/ && !main { main = $2 }
            d && $1 == d && /sys\/bus\/pci\/devices\// { if (!pci0) pci0 = $2; pci1 = $2 }
            d && $1 == d && /dev\/cpu\/[0-9]+\/msr", O_RDWR/ { if (!msr0) msr0 = $2; msr1 = $2 }
            $1 != d && /revents=POLLIN/ && !greet { greet = $2 }
            function ms(t) { return t ? (t - t0) * 1000 : -1 }
            END { printf "  %-6s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", name, ms(spawn), ms(exec),
                  ms(main), ms(pci0), ms(pci1), ms(msr0), ms(msr1), ms(greet) }' "$tmp/trace.$root"
    done
    echo "  (spawn: the library calls posix_spawn; exec: the daemon execs; main: it first reads cpuinfo,"
    echo "   past dynamic loading; pci0/pci1: first and last PCI sysfs file read; msr0/msr1: first and"
    echo "   last register file opened; greeting: the application sees the daemon's greeting)"
fi
