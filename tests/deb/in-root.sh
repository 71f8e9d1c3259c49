#!/bin/bash
# tests/deb/in-root.sh - run by tests/deb/deb-test.sh as root inside the throwaway Debian root
# (chroot, private mount namespace, /dev a scratch tmpfs). /root/pkg holds our package (new.deb)
# and the same package with the next version (next.deb); likwid's .debs are in apt's cache.
# Prints one PASS/FAIL line per check and ends with "N passed, N failed".
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
pass=0 fail=0
check() {   # NAME COMMAND...: PASS when the command succeeds
    local name=$1
    shift
    if "$@" >/tmp/check.out 2>&1; then
        echo "PASS  $name"
        pass=$((pass + 1))
    else
        echo "FAIL  $name: $(head -c 600 /tmp/check.out | tr '\n' ' ')"
        fail=$((fail + 1))
    fi
}
daemon=/usr/sbin/likwid-accessD
pkg=/root/pkg
apt_likwid() { apt-get install -y -qq --no-install-recommends --no-download likwid >/dev/null; }
# Debian's daemon as likwid's md5sums list it: "LIKWID's daemon is back" means this file.
likwid_md5() { awk '$2 == "usr/sbin/likwid-accessD" { print $1 }' /var/lib/dpkg/info/likwid.md5sums; }
ours_md5() { awk '$2 == "usr/sbin/likwid-accessD" { print $1 }' /var/lib/dpkg/info/likwid-access.md5sums; }
is_file_md5() { [ "$(md5sum <"$1" | cut -d' ' -f1)" = "$2" ]; }
# Ours: the bytes our md5sums list (and not LIKWID's). dpkg -S cannot tell: with likwid
# installed it names both packages for the diverted path.
is_ours() {
    is_file_md5 "$daemon" "$(ours_md5)" || return 1
    [ ! -e /var/lib/dpkg/info/likwid.md5sums ] || ! is_file_md5 "$daemon" "$(likwid_md5)"
}
is_setuid_root() { [ "$(stat -c '%U %a' "$1")" = "root 4755" ]; }
diverted() {
    dpkg-divert --list /usr/sbin/likwid-accessD |
        grep -x "diversion of /usr/sbin/likwid-accessD to /usr/sbin/likwid-accessD.likwid by likwid-access" >/dev/null
}
not_diverted() { [ -z "$(dpkg-divert --list /usr/sbin/likwid-accessD)" ]; }
likwid_back() { not_diverted && [ ! -e $daemon.likwid ] && is_file_md5 $daemon "$(likwid_md5)" && [ "$(stat -c %a $daemon)" = 755 ]; }
no_override() { ! dpkg-statoverride --list $daemon; }
override_is() { [ "$(dpkg-statoverride --list $daemon)" = "$1 $daemon" ]; }
likwid_diverted() { diverted && is_file_md5 $daemon.likwid "$(likwid_md5)"; }
likwid_diverted_plain() { [ "$(stat -c '%U %a' $daemon.likwid)" = "root 755" ]; }
ours_setuid_override() { override_is "root root 4755" && is_setuid_root $daemon; }
has_caps() { getcap $daemon | grep 'cap_dac_override,cap_sys_rawio=ep' >/dev/null; }
caps_only() { has_caps && [ "$(stat -c %a $daemon)" = 755 ] && no_override; }
next_library() {
    local lib=/usr/lib/x86_64-linux-gnu/liblikwid_access.so new next
    new=$(dpkg-deb -f $pkg/new.deb Version) next=$(dpkg-deb -f $pkg/next.deb Version)
    [ "$(readlink $lib.0)" = "liblikwid_access.so.$next" ] && [ -f "$lib.$next" ] && [ ! -e "$lib.$new" ]
}
refuses_bad_switch() {
    ! env LIKWID_ACCESS_USE_CAPS=yes dpkg-reconfigure likwid-access && caps_only
}
version_is() { [ "$(dpkg-query -W -f '${Version} ${db:Status-Abbrev}' likwid-access)" = "$1 ii " ]; }

# ---- the simulated machine: a Zen 3 with two CPUs, made by our own tool once it is installed
fresh_registers() {   # the register files as the machine starts (demo.c leaves PERF_CTL0 enabled)
    mkdir -p /dev/cpu/0 /dev/cpu/1
    for n in 0 1; do
        cp --sparse=always /root/m/dev/cpu/$n/msr /dev/cpu/$n/msr
        chmod 0600 /dev/cpu/$n/msr
    done
}
setup_machine() {
    likwid-access sim /root/m --cpu zen3 --cpus 2 >/dev/null
    fresh_registers
    mount --bind /root/m/proc/cpuinfo /proc/cpuinfo
    # LIKWID reads the CPU from its topology file (LIKWID src/topology.c, tag v5.2.2).
    likwid-genTopoCfg -o /root/topo.cfg >/dev/null 2>&1
    local family model
    family=$(awk -F: '/^cpu family/ { print $2 + 0; exit }' /root/m/proc/cpuinfo)
    model=$(awk -F: '/^model[ \t]*:/ { print $2 + 0; exit }' /root/m/proc/cpuinfo)
    sed -e "s/^cpuid_info family = .*/cpuid_info family = $family/" \
        -e "s/^cpuid_info model = .*/cpuid_info model = $model/" \
        -e "s/^cpuid_info stepping = .*/cpuid_info stepping = 1/" \
        -e "s/^cpuid_info isIntel = .*/cpuid_info isIntel = 0/" /root/topo.cfg >/etc/likwid_topo.cfg
    id tester >/dev/null 2>&1 || useradd -m tester
}
# A register as the daemon left it: REG in the store file of CPU N (8 bytes at offset 8*REG).
reg() { od -An -tu8 -j $(($2 * 8)) -N 8 "/dev/cpu/$1/msr" | tr -d ' '; }

# Debian's likwid-perfctr, as an unprivileged user, through whatever /usr/sbin/likwid-accessD is:
# every counter of the CLOCK group must print a number (a `-` means the daemon did not serve it).
perfctr_values() {
    fresh_registers
    runuser -u tester -- likwid-perfctr -M 1 -C 0 -g CLOCK sleep 0.1 >/root/perfctr.out 2>&1 || {
        cat /root/perfctr.out
        return 1
    }
    awk -F'|' '
        /\| *Event *\| *Counter *\|/ { on = 1; next }
        on && /^\+/ { if (rows) exit; next }
        on && NF >= 4 {
            v = $4; gsub(/ /, "", v); rows++
            if (v !~ /^-?[0-9][0-9.e+-]*$/) { print "counter " $2 " printed \"" v "\""; bad = 1 }
        }
        END { if (rows < 3) { print "only " rows " counter rows"; bad = 1 } exit bad }' /root/perfctr.out || {
        cat /root/perfctr.out
        return 1
    }
}
# c-tests/demo.c against the installed header and library, found by pkg-config alone; run as
# the unprivileged user, the library starts /usr/sbin/likwid-accessD (compiled in) by itself.
demo() {
    local flags
    flags=$(pkg-config --cflags --libs likwid-access) || return 1
    # shellcheck disable=SC2086 # pkg-config's words
    cc -std=c11 -Wall -Wextra -Werror -pedantic /root/demo.c $flags -o /home/tester/demo &&
        runuser -u tester -- /home/tester/demo | tee /root/demo.out &&
        grep -q '^2 CPUs served by one likwid-accessD$' /root/demo.out &&
        [ "$(reg 1 0xC0010201)" = 1001 ]
}
no_file_left() {   # LIST: none of the files and links our package listed exists, but LIKWID's daemon
    local p left=0
    while read -r p; do
        [ "$p" = $daemon ] && continue
        # bookworm's merged /usr: /lib is the system's link to usr/lib, listed for our unit.
        case $p in /bin | /sbin | /lib | /lib64) continue ;; esac
        if [ -L "$p" ] || [ -f "$p" ]; then echo "left: $p"; left=1; fi
        if [ -d "$p" ] && [ -z "$(ls -A "$p")" ]; then echo "empty directory left: $p"; left=1; fi
    done <"$1"
    [ ! -e /var/lib/likwid-access ] || { echo "left: /var/lib/likwid-access"; left=1; }
    return $left
}

echo "== 1. Debian's likwid first, then ours"
check "apt-get install likwid (Debian's)" apt_likwid
check "dpkg -i likwid-access" dpkg -i $pkg/new.deb
check "likwid-accessD is ours (dpkg -S, md5sums)" is_ours
check "likwid-accessD is setuid root" is_setuid_root $daemon
check "LIKWID's daemon diverted to likwid-accessD.likwid" likwid_diverted
check "setuid through dpkg-statoverride" override_is "root root 4755"
check "the library launches /usr/sbin/likwid-accessD (compiled in)" grep -aq /usr/sbin/likwid-accessD /usr/lib/x86_64-linux-gnu/liblikwid_access.so.0
soname_links() {
    local lib=/usr/lib/x86_64-linux-gnu/liblikwid_access.so
    [ "$(readlink $lib)" = liblikwid_access.so.0 ] && [ -f "$(readlink -f $lib.0)" ] &&
        readelf -d $lib.0 | grep 'SONAME.*\[liblikwid_access.so.0\]' >/dev/null
}
check "SONAME links (.so -> .so.0 -> the library, whose SONAME is liblikwid_access.so.0)" soname_links
setup_machine
check "Debian's likwid-perfctr -M 1 -g CLOCK on a simulated Zen 3, as a user, prints every counter" perfctr_values
check "c-tests/demo.c built with pkg-config against the installed header runs as a user" demo
check "the installed Fortran module is there" test -f /usr/include/likwid_access.f90

echo "== 2. upgrade to the next version"
check "dpkg -i (next version)" dpkg -i $pkg/next.deb
check "the next version is installed" version_is "$(dpkg-deb -f $pkg/next.deb Version)"
check "the next version's library replaced the old one (SONAME link moved, old file gone)" next_library
check "divert kept" diverted
check "override kept, daemon setuid root" ours_setuid_override
check "likwid-accessD is ours" is_ours
check "likwid-perfctr through the upgraded daemon" perfctr_values
dpkg -L likwid-access >/root/ours.list
check "dpkg --purge likwid-access" dpkg --purge likwid-access
check "LIKWID's daemon is back (its md5sum, 0755, no divert)" likwid_back
check "no override left" no_override
check "no file of ours left (dpkg -L before purge vs the file system)" no_file_left /root/ours.list

echo "== 3. ours first, then Debian's likwid; remove (not purge) gives LIKWID its daemon"
check "apt-get purge likwid" apt-get purge -y -qq likwid
check "dpkg -i likwid-access (no likwid installed)" dpkg -i $pkg/new.deb
check "diverted although nothing to move" diverted
check "apt-get install likwid after ours" apt_likwid
check "likwid-accessD is still ours and setuid" ours_setuid_override
check "likwid-accessD is still ours (dpkg -S, md5sums)" is_ours
check "LIKWID's daemon went to likwid-accessD.likwid" likwid_diverted
check "LIKWID's diverted daemon did not get our setuid override (trigger)" likwid_diverted_plain
check "apt-get reinstall likwid while ours is installed" apt-get install -y -qq --no-download --reinstall likwid
check "LIKWID's diverted daemon is still not setuid" likwid_diverted_plain
check "dpkg -r likwid-access" dpkg -r likwid-access
check "LIKWID's daemon is back after remove" likwid_back
check "no override left after remove" no_override
check "dpkg --purge likwid-access" dpkg --purge likwid-access

echo "== 4. file capabilities (LIKWID_ACCESS_USE_CAPS=1) and an administrator's override"
check "LIKWID_ACCESS_USE_CAPS=1 dpkg -i" env LIKWID_ACCESS_USE_CAPS=1 dpkg -i $pkg/new.deb
check "capabilities, not setuid, no override" caps_only
check "likwid-perfctr through the capable daemon" perfctr_values
check "dpkg -i (next version) without the switch" dpkg -i $pkg/next.deb
check "the upgrade keeps the capabilities" caps_only
check "an invalid LIKWID_ACCESS_USE_CAPS is refused" refuses_bad_switch
check "LIKWID_ACCESS_USE_CAPS=0 dpkg-reconfigure" env LIKWID_ACCESS_USE_CAPS=0 dpkg-reconfigure likwid-access
check "back to setuid through our override, no capabilities" sh -c "$(declare -f ours_setuid_override override_is is_setuid_root); daemon=$daemon; ours_setuid_override && [ -z \"\$(getcap $daemon)\" ]"
check "LIKWID_ACCESS_USE_CAPS=1 dpkg-reconfigure" env LIKWID_ACCESS_USE_CAPS=1 dpkg-reconfigure likwid-access
check "capabilities again, our override gone" caps_only
check "dpkg --purge (capabilities)" dpkg --purge likwid-access
check "LIKWID's daemon is back, without capabilities" likwid_back
check "no capabilities on LIKWID's daemon" test -z "$(getcap $daemon)"
dpkg-statoverride --add root root 0750 $daemon
check "dpkg -i with an administrator's override" dpkg -i $pkg/new.deb
check "the administrator's override wins" sh -c "[ \"\$(stat -c '%U %a' $daemon)\" = 'root 750' ]"
check "the administrator's override is still listed" override_is "root root 750"
check "dpkg --purge likwid-access (administrator's override)" dpkg --purge likwid-access
check "the purge keeps the administrator's override" override_is "root root 750"
dpkg-statoverride --remove $daemon

echo "== 5. neither file there: ours alone, purged"
check "apt-get purge likwid" apt-get purge -y -qq likwid
check "dpkg -i likwid-access, then dpkg --purge" sh -c "dpkg -i $pkg/new.deb >/dev/null && dpkg --purge likwid-access >/dev/null"
check "no divert, no daemon, no override left" sh -c "[ -z \"\$(dpkg-divert --list '/usr/sbin/likwid-accessD*')\" ] && [ ! -e $daemon ] && [ ! -e $daemon.likwid ] && ! dpkg-statoverride --list $daemon"

echo "== 6. service mode from the package: the administrator's 0755 override, the unit, LIKWID through it"
unit=/lib/systemd/system/likwid-accessd.service
wants=/etc/systemd/system/multi-user.target.wants/likwid-accessd.service
check "apt-get install likwid" apt_likwid
dpkg-statoverride --add root root 0755 $daemon
check "dpkg -i with the administrator's 0755 override (service mode)" dpkg -i $pkg/new.deb
check "likwid-accessD is ours, 0755, no capability" sh -c "[ \"\$(stat -c '%U %a' $daemon)\" = 'root 755' ] && [ -z \"\$(getcap $daemon)\" ]"
check "nothing of the package is setuid, setgid or capable" sh -c "! dpkg -L likwid-access | xargs -d '\n' stat -c '%a %n' | grep -E '^[2467][0-7]{3} ' && [ -z \"\$(dpkg -L likwid-access | xargs -d '\n' getcap 2>/dev/null)\" ]"
check "the unit is shipped: $unit runs /usr/sbin/likwid-accessD --service" grep -qx 'ExecStart=/usr/sbin/likwid-accessD --service' $unit
check "the unit is shipped disabled (no $wants)" sh -c "[ ! -e $wants ] && ! deb-systemd-helper --quiet is-enabled likwid-accessd.service"
# No systemd runs in this root: what it would do is in the maintainer scripts dh_installsystemd
# wrote (debian/rules): try-restart after an upgrade, nothing at install, stop at remove (prerm).
maintscripts() {
    local i=/var/lib/dpkg/info/likwid-access
    grep -q "deb-systemd-invoke try-restart 'likwid-accessd.service'" $i.postinst &&
        ! grep -Eq "deb-systemd-invoke (start|restart) " $i.postinst &&
        grep -q "deb-systemd-invoke stop likwid-accessd.service" $i.prerm
}
check "maintainer scripts: try-restart after upgrade, no start at install, stop at remove" maintscripts
service_perfctr() {   # what systemd's ExecStart runs, started by hand (no systemd in this root)
    mkdir -p /etc/likwid-access
    # cpu-scope off: this root has no cgroup file system mounted, and scope fails closed.
    printf 'user tester read-write\ndefault none\ncpu-scope off\n' >/etc/likwid-access/service.conf
    /usr/sbin/likwid-accessD --service 2>/root/service.err &
    local spid=$! rc=0
    for _ in $(seq 250); do likwid-access service status >/dev/null 2>&1 && break; sleep 0.02; done
    perfctr_values || rc=1
    kill -TERM $spid
    wait $spid || { echo "service exit $? at SIGTERM"; rc=1; }
    [ ! -e /run/likwid-access/socket ] || { echo "socket left"; rc=1; }
    cat /root/service.err
    rm -r /etc/likwid-access
    return $rc
}
check "Debian's likwid-perfctr as a user through the package's service (relay) prints every counter" service_perfctr
# What `systemctl enable` makes from the unit's [Install] WantedBy= (no systemd in this root).
mkdir -p ${wants%/*}
ln -s $unit $wants
check "dpkg -i (next version) keeps the administrator's enable" sh -c "dpkg -i $pkg/next.deb >/dev/null 2>&1 && [ \"\$(readlink $wants)\" = $unit ]"
dpkg -L likwid-access >/root/ours.list
check "dpkg --purge likwid-access (service mode)" dpkg --purge likwid-access
check "the purge forgets the enable (no $wants)" test ! -e $wants
check "no file of ours left (service mode)" no_file_left /root/ours.list
check "the purge keeps the administrator's 0755 override" override_is "root root 755"
dpkg-statoverride --remove $daemon

echo "$pass passed, $fail failed"
[ $fail = 0 ]
