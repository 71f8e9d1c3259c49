# Sourced by the tests that run Debian's likwid-accessD: that daemon picks its register rules
# from CPUID on the host (never from /proc/cpuinfo), so the simulated machine must be the host's
# own CPU. `host_cpu` sets host_sim (the `likwid-access sim --cpu` name of the host's CPU) and
# host_vendor (intel or amd), and fails when the host has no built-in table.
host_cpu() {
    host_sim=$(target/release/likwid-access policy 2>/dev/null |
        sed -n 's/^# likwid-access policy: built-in table \([a-z0-9]*\) .*/\1/p')
    case $(awk -F': *' '/^vendor_id/ { print $2; exit }' /proc/cpuinfo) in
        GenuineIntel) host_vendor=intel ;;
        AuthenticAMD) host_vendor=amd ;;
        *) host_vendor= ;;
    esac
    [ -n "$host_sim" ] && [ -n "$host_vendor" ]
}
