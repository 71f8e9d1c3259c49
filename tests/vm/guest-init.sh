#!/bin/busybox sh
# /init of the guest tests/vm/vm-test.sh boots: Debian's kernel, busybox, the kernel's msr driver,
# our binaries under /opt/lwa. Results go to the second serial port (/dev/ttyS1), one
# "PASS name" or "FAIL name" line per check, then "N passed, N failed" and "VM-TEST-END".
# Kernel command line: lwa.table=NAME (the policy table this -cpu must get), lwa.verbose=1.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp
# A file system that honours setuid bits and file capabilities (security.* xattrs) for the
# installed daemons, traversable by everyone.
mkdir -p /inst && mount -t tmpfs -o mode=0755 tmpfs /inst
exec >/dev/ttyS1 2>&1 </dev/null

table= verbose=0
for word in $(cat /proc/cmdline); do
    case $word in
        lwa.table=*) table=${word#lwa.table=} ;;
        lwa.verbose=1) verbose=1 ;;
    esac
done
user=1000
as_user="/usr/local/bin/setpriv --reuid=$user --regid=$user --clear-groups"
lwa=/opt/lwa
checks=$lwa/vm_checks
passed=0 failed=0

# report NAME RC OUTPUT-FILE: one result line; the output shown on failure (or when verbose).
report() {
    took=$(awk -v t0="$t0" '{ printf "%.1f", $1 - t0 }' /proc/uptime)
    if [ "$2" = 0 ]; then
        echo "PASS $1 ($took s)"
        passed=$((passed + 1))
        [ $verbose = 1 ] && sed 's/^/    | /' "$3"
    else
        echo "FAIL $1 ($took s)"
        sed 's/^/    | /' "$3"
        failed=$((failed + 1))
    fi
    return 0
}
# check NAME CMD...: CMD exits 0, within a bound.
check() {
    name=$1
    shift
    rc=0 t0=$(cut -d' ' -f1 /proc/uptime)
    timeout 150 "$@" >/tmp/out 2>&1 || rc=$?
    [ $rc = 0 ] || echo "exit $rc" >>/tmp/out
    report "$name" $rc /tmp/out
}
# expect_output NAME PATTERNS CMD...: the output of CMD (stdout and stderr, then a line
# "exit N") matches each of the newline-separated extended regular expressions in PATTERNS.
expect_output() {
    name=$1 patterns=$2
    shift 2
    rc=0 t0=$(cut -d' ' -f1 /proc/uptime)
    timeout 150 "$@" >/tmp/out 2>&1 || rc=$?
    echo "exit $rc" >>/tmp/out
    ok=0
    old_ifs=$IFS
    IFS='
'
    for p in $patterns; do
        grep -Eq -- "$p" /tmp/out || { echo "lacks: $p" >>/tmp/out; ok=1; }
    done
    IFS=$old_ifs
    report "$name" $ok /tmp/out
}

echo "guest: $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(grep -c ^processor /proc/cpuinfo) CPUs, uptime $(cut -d' ' -f1 /proc/uptime) s"
check "msr driver loaded from the kernel package (insmod msr.ko)" insmod /lib/modules/msr.ko
check "real character devices /dev/cpu/N/msr (root:root 0600)" \
    sh -c 'for d in /dev/cpu/[0-9]*/msr; do [ -c $d ] && [ "$(stat -c "%u %a" $d)" = "0 600" ] || { ls -l $d; exit 1; }; done; ls -l /dev/cpu/*/msr'

# The installs an administrator makes (README, Install), plus two that must not work.
mkdir -m 0755 /inst/suid /inst/cap /inst/plain /inst/dac
for v in suid cap plain dac; do
    cp $lwa/likwid-accessD /inst/$v/likwid-accessD
    chown 0:0 /inst/$v/likwid-accessD
    chmod 0755 /inst/$v/likwid-accessD
done
chmod 4755 /inst/suid/likwid-accessD
check "setcap cap_dac_override,cap_sys_rawio=ep install" /usr/local/bin/setcap cap_dac_override,cap_sys_rawio=ep /inst/cap/likwid-accessD
check "setcap cap_dac_override=ep install (no CAP_SYS_RAWIO)" /usr/local/bin/setcap cap_dac_override=ep /inst/dac/likwid-accessD
syslogd -n -O /tmp/syslog & syslog_pid=$!

# The policy table this CPU model gets.
export LIKWID_ACCESSD=/inst/plain/likwid-accessD
$lwa/likwid-access policy >/tmp/policy.txt 2>&1
expect_output "policy: built-in table $table for this -cpu" "^# likwid-access policy: built-in table $table " \
    head -2 /tmp/policy.txt
expect_output "doctor as root: table $table, msr driver, live read through the setuid daemon" \
    "^ok +cpu .*built-in table $table [(]
^ok +msr driver
^access works
^exit 0$" env LIKWID_ACCESSD=/inst/suid/likwid-accessD $lwa/likwid-access doctor

# Root, through the library and a root daemon, against pread of the character device.
check "reads: every listed register on every CPU equals the driver's pread at offset R" $checks reads /tmp/policy.txt
case $table in
    skx | icx | spr)
        check "constant IA32_MISC_ENABLE 0x1A0 = 0x1 through the library and the driver" $checks expect 0x1A0 0x1
        check "constant IA32_PERF_STATUS 0x198 = 0x400000003e8 through the library and the driver" \
            $checks expect 0x198 0x400000003e8
        ;;
esac
check "denials: unlisted registers (APIC_BASE, EFER, TSC_AUX, ...) refused, values unchanged" $checks deny /tmp/policy.txt
check "batch: every listed register on every CPU in one HPMbatch, one pinned worker per CPU" $checks batch /tmp/policy.txt
check "offline: CPU 1 taken offline mid-session answers an error, CPU 0 goes on, back online reads" \
    $checks offline /tmp/policy.txt

# An unprivileged user against the driver's own checks at open, and through each install.
$checks dump /tmp/policy.txt /tmp/dump.txt
chmod 0644 /tmp/dump.txt /tmp/policy.txt
mknod -m 0666 /inst/msr0-world c 202 0
check "user: open(/dev/cpu/0/msr) refused by its mode (EACCES)" $as_user $checks open-denied /dev/cpu/0/msr 13
check "user: open of a world-writable msr node refused by the driver's CAP_SYS_RAWIO check (EPERM)" \
    $as_user $checks open-denied /inst/msr0-world 1
check "user + setuid-root daemon: the driver's values, EFER refused, batch on pinned workers, daemon dropped" \
    env LIKWID_ACCESSD=/inst/suid/likwid-accessD $as_user $checks user /tmp/dump.txt 0
check "user + setcap daemon: the driver's values, EFER refused, batch on pinned workers, daemon dropped" \
    env LIKWID_ACCESSD=/inst/cap/likwid-accessD $as_user $checks user /tmp/dump.txt 0
expect_output "user + unprivileged daemon: HPMaddThread -EACCES with the fix" \
    "cannot open /dev/cpu/0/msr: permission denied; install likwid-accessD setuid root or with cap_sys_rawio
^exit 0$" \
    env LIKWID_ACCESSD=/inst/plain/likwid-accessD $as_user $checks refused 13
expect_output "user + cap_dac_override-only daemon: the driver refuses without CAP_SYS_RAWIO, -EACCES with the fix" \
    "cannot open /dev/cpu/0/msr: permission denied; install likwid-accessD setuid root or with cap_sys_rawio
^exit 0$" \
    env LIKWID_ACCESSD=/inst/dac/likwid-accessD $as_user $checks refused 13
expect_output "user: doctor with the setuid daemon says access works" "^ok +privileges +/inst/suid/likwid-accessD is setuid root
^skip +writes +cannot read /sys/module/msr/parameters/allow_writes [(]root only[)]
^access works
^exit 0$" \
    env LIKWID_ACCESSD=/inst/suid/likwid-accessD $as_user $lwa/likwid-access doctor
expect_output "user: doctor with the setcap daemon says access works" "^ok +privileges .*has cap_dac_override and cap_sys_rawio
^access works
^exit 0$" \
    env LIKWID_ACCESSD=/inst/cap/likwid-accessD $as_user $lwa/likwid-access doctor
expect_output "user: doctor with an unprivileged daemon names the fix" "^FAIL +privileges +.*neither setuid root nor has cap_sys_rawio
^ +fix: chown root:root /inst/plain/likwid-accessD && chmod u[+]s
^exit 1$" \
    env LIKWID_ACCESSD=/inst/plain/likwid-accessD $as_user $lwa/likwid-access doctor
expect_output "user: doctor with a cap_dac_override-only daemon names the fix" "^FAIL +privileges +.*neither setuid root nor has cap_sys_rawio
^exit 1$" \
    env LIKWID_ACCESSD=/inst/dac/likwid-accessD $as_user $lwa/likwid-access doctor
sleep 0.5
kill $syslog_pid 2>/dev/null
expect_output "syslog: the daemon logged the user's refused EFER read" \
    "denied read: uid=$user pid=[0-9]+ cpu=0 device=0 reg=0xc0000080" cat /tmp/syslog

echo "$passed passed, $failed failed (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"
echo "VM-TEST-END"
poweroff -f
