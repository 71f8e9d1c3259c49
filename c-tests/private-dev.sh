# Sourced inside `unshare -m --propagation private` by the tests that need the real paths:
# `private_dev SCRATCH NCPUS` replaces /dev, for this mount namespace only, with a tmpfs holding
# the few device nodes a shell needs and NCPUS sparse register-store files as /dev/cpu/N/msr
# (root-owned 0600, as the kernel's). /dev is not modified on the host (a node made in devtmpfs
# would show there even from a private mount namespace).
private_dev() {
    local scratch=$1 ncpus=$2 cpu node
    mkdir "$scratch/dev"
    mount -t tmpfs -o mode=0755 none "$scratch/dev"
    for node in null zero full random urandom tty; do
        touch "$scratch/dev/$node"
        mount --bind "/dev/$node" "$scratch/dev/$node"
    done
    for ((cpu = 0; cpu < ncpus; cpu++)); do
        mkdir -p "$scratch/dev/cpu/$cpu"
        truncate -s 32G "$scratch/dev/cpu/$cpu/msr"
        chmod 0600 "$scratch/dev/cpu/$cpu/msr"
    done
    mount --move "$scratch/dev" /dev
}
