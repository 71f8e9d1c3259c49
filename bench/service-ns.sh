# Sourced by bench/service-ab.sh and bench/service-cg.sh inside their private mount namespace:
# `service_namespace TMP` puts the simulated 2-CPU machine TMP/m on /dev/cpu and /proc/cpuinfo, a
# tmpfs on /run, and a service.conf that lets root read and write. /etc is the host's even in the
# namespace: an overlay keeps /etc/likwid-access in it (a tmpfs on a host directory vanishes here
# when another test removes the directory).
source c-tests/private-dev.sh

service_namespace() {
    local tmp=$1
    private_dev "$tmp" 2
    mount --bind "$tmp/m/proc/cpuinfo" /proc/cpuinfo
    mount -t tmpfs -o mode=0755 none /run
    mkdir "$tmp/etc-upper" "$tmp/etc-work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$tmp/etc-upper,workdir=$tmp/etc-work" /etc
    mkdir -p -m 0755 /etc/likwid-access
    printf "user root read-write\ndefault none\n" >/etc/likwid-access/service.conf
}
