# tests/likwid/topo.sh - sourced by tests/likwid/harness.sh and tests/service/edge.sh.
#
# LIKWID takes the CPU's identity from its topology file when /etc/likwid_topo.cfg exists
# (LIKWID src/topology.c, tag v5.2.2: the cpuid_info lines), not from /proc/cpuinfo; the tests
# make that file with the host's likwid-genTopoCfg and give it the simulated CPU's identity here.
#
# likwid_topo FAMILY MODEL STEPPING IS_INTEL PERF_VERSION NUM_CTR NUM_FIXED CTR_WIDTH [OSNAME]
# reads a topology file on stdin and writes it with those cpuid_info values on stdout.
likwid_topo() {
    local osname=()
    [[ -n ${9:-} ]] && osname=(-e "s/^cpuid_info osname = .*/cpuid_info osname = $9/")
    sed -e "s/^cpuid_info family = .*/cpuid_info family = $1/" \
        -e "s/^cpuid_info model = .*/cpuid_info model = $2/" \
        -e "s/^cpuid_info stepping = .*/cpuid_info stepping = $3/" \
        -e "s/^cpuid_info isIntel = .*/cpuid_info isIntel = $4/" \
        -e "s/^cpuid_info perf_version = .*/cpuid_info perf_version = $5/" \
        -e "s/^cpuid_info perf_num_ctr = .*/cpuid_info perf_num_ctr = $6/" \
        -e "s/^cpuid_info perf_num_fixed_ctr = .*/cpuid_info perf_num_fixed_ctr = $7/" \
        -e "s/^cpuid_info perf_width_ctr = .*/cpuid_info perf_width_ctr = $8/" \
        "${osname[@]}"
}
