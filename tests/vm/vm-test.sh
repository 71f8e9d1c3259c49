#!/usr/bin/env bash
# tests/vm/vm-test.sh - our daemon, tool, library and C checks inside Debian's own kernel under
# qemu (TCG), on the kernel's real msr driver: /dev/cpu/N/msr character devices from msr.ko.
#
# Usage (repo root, as root):  tests/vm/vm-test.sh [MODEL...|all]     default: skx zen4
#   MODEL: skx icx spr zen zen2 zen3 zen4 zen5 (the policy table the guest CPU must get).
# Needs target/release/{likwid-accessD,likwid-access,liblikwid_access.so} (make build),
# qemu-system-x86_64, busybox (static), cpio, setpriv, setcap, a C compiler, and the kernel
# package linux-image-6.1.0-N-amd64 (fetched with apt-get download, unpacked with dpkg-deb,
# never installed) cached in $LIKWID_ACCESS_VM_CACHE (default /var/cache/likwid-access-vm).
#
# One boot per model (qemu -accel tcg -smp 2 -cpu ...); the guest (tests/vm/guest-init.sh)
# prints one PASS/FAIL line per check on its second serial port. The last line is
# "N passed, N failed" over all models. Exit 0 when nothing failed, 77 when skipped (not root,
# qemu or busybox missing), which CI=true turns into a failure.
# Environment: VM_TIMEOUT seconds per boot (default 480), VERBOSE=1 every check's output,
# LIKWID_ACCESS_VM_KEEP=1 keep the work directory (initramfs, serial logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
root_dir=$PWD
rel=$root_dir/target/release

declare -A cpu_of=(
    [skx]="Skylake-Server"
    [icx]="Icelake-Server,model=106"
    [spr]="Skylake-Server,model=143"
    [zen]="EPYC"
    [zen2]="EPYC-Rome"
    [zen3]="EPYC-Milan"
    [zen4]="EPYC-Milan,model=17"
    [zen5]="EPYC-Milan,family=26,model=2"
)
all_models=(skx icx spr zen zen2 zen3 zen4 zen5)
models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(skx zen4)
[[ ${models[*]} != all ]] || models=("${all_models[@]}")
for m in "${models[@]}"; do
    [[ -n ${cpu_of[$m]:-} ]] || { echo "vm-test: unknown model $m (one of: ${all_models[*]}, all)" >&2; exit 2; }
done

skip() {
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: cannot run the VM tests: $1 (CI=true never skips)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: vm-test: $1"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root (to fetch the kernel package into the cache and build the guest's root-owned, setuid files)"
for tool in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio setpriv:util-linux \
    setcap:libcap2-bin getcap:libcap2-bin dpkg-deb:dpkg xz:xz-utils "${CC:-cc}":gcc; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || skip "no ${tool%%:*} (apt-get install ${tool#*:})"
done
busybox=$(command -v busybox)
if readelf -l "$busybox" 2>/dev/null | grep -q 'program interpreter'; then
    skip "$busybox is dynamically linked; the guest needs busybox-static"
fi
for f in "$rel/likwid-accessD" "$rel/likwid-access" "$rel/liblikwid_access.so"; do
    [[ -e $f ]] || { echo "vm-test: missing $f (make build)"; echo "0 passed, 1 failed"; exit 1; }
done

cache=${LIKWID_ACCESS_VM_CACHE:-/var/cache/likwid-access-vm}
work=$(mktemp -d "${TMPDIR:-/tmp}/likwid-vm.XXXXXX")
cleanup() {
    if [[ ${LIKWID_ACCESS_VM_KEEP:-0} == 1 ]]; then echo "vm-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the kernel: Debian's current linux-image-6.1.0-N-amd64, cached -----------------------
# Which package linux-image-amd64 points at now.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}
# fetch_kernel PKG: its vmlinuz and msr.ko into $cache/PKG (apt-get download + dpkg-deb).
fetch_kernel() {
    local pkg=$1 dl off ok=1
    echo "vm-test: fetching $pkg into $cache (once per kernel version)"
    mkdir -p "$cache"
    dl=$(mktemp -d "$cache/.fetch.XXXXXX")
    if (cd "$dl" && apt-get download -qq "$pkg" >/dev/null 2>"$dl/apt.log") &&
        dpkg-deb --fsys-tarfile "$dl"/"$pkg"_*.deb | tar -x -C "$dl" --wildcards './boot/vmlinuz-*' '*/msr.ko'; then
        mkdir -p "$dl/out"
        cp "$dl"/boot/vmlinuz-* "$dl/out/vmlinuz"
        find "$dl" -name msr.ko -path '*/arch/x86/kernel/*' -exec cp {} "$dl/out/msr.ko" \;
        # The bzImage decompresses itself slowly under TCG; qemu boots the ELF vmlinux inside it
        # directly through its PVH entry (CONFIG_PVH=y), which saves about 6 s per boot.
        off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$dl/out/vmlinuz" | head -n1 | cut -d: -f1 || true)
        if [[ -n $off ]]; then
            # xz stops after the stream (the bzImage goes on): tail's SIGPIPE is not a failure.
            xz -dc --single-stream < <(tail -c +$((off + 1)) "$dl/out/vmlinuz") >"$dl/out/vmlinux" 2>/dev/null ||
                rm -f "$dl/out/vmlinux"
            [[ $(head -c 4 "$dl/out/vmlinux" 2>/dev/null | od -A n -t x1 | tr -d ' ') == 7f454c46 ]] || rm -f "$dl/out/vmlinux"
        fi
        if [[ -s $dl/out/msr.ko ]]; then
            if [[ -s $dl/out/vmlinux ]]; then
                rm -f "$dl/out/vmlinuz"
            else
                echo "vm-test: no xz-compressed vmlinux found in the bzImage; booting the bzImage (slower)"
                mv "$dl/out/vmlinuz" "$dl/out/vmlinux"
            fi
            rm -rf "${cache:?}/$pkg"
            mv "$dl/out" "$cache/$pkg"
            # Older kernels are of no further use (about 70 MB each).
            find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'linux-image-*' ! -name "$pkg" -exec rm -rf {} +
            ok=0
        fi
    else
        sed 's/^/    apt: /' "$dl/apt.log" >&2 || true
    fi
    rm -rf "$dl"
    return $ok
}
kernel_dir=
pkg=$(kernel_package)
if [[ -n $pkg && -s $cache/$pkg/vmlinux && -s $cache/$pkg/msr.ko ]]; then
    kernel_dir=$cache/$pkg
else
    # An index that names no kernel, or one the mirror no longer has: refresh it once.
    if [[ -z $pkg ]] || ! fetch_kernel "$pkg"; then
        apt-get update -qq >/dev/null 2>&1 || true
        pkg=$(kernel_package)
        [[ -z $pkg ]] || [[ -s $cache/$pkg/vmlinux && -s $cache/$pkg/msr.ko ]] || fetch_kernel "$pkg" || true
    fi
    [[ -n $pkg && -s $cache/$pkg/msr.ko ]] && kernel_dir=$cache/$pkg
fi
if [[ -z $kernel_dir ]]; then
    # No index or no network: the newest kernel already cached will do.
    kernel_dir=$(find "$cache" -mindepth 2 -maxdepth 2 -name msr.ko -printf '%h\n' 2>/dev/null | sort -V | tail -n1)
    [[ -n $kernel_dir ]] || skip "cannot fetch linux-image-amd64's kernel package (no apt index or network) and none is cached in $cache"
fi
echo "vm-test: kernel $(basename "$kernel_dir") from $kernel_dir"

# ---- the guest's root file system -----------------------------------------------------------
# busybox, our stripped binaries and the C checks, setpriv and setcap, and the shared libraries
# they load (ldd), at the paths the dynamic loader searches.
groot=$work/root
mkdir -p "$groot"/{bin,dev,proc,sys,tmp,etc,lib/modules,opt/lwa/lib}
cp "$busybox" "$groot/bin/busybox"
cp "$kernel_dir/msr.ko" "$groot/lib/modules/msr.ko"
cp tests/vm/guest-init.sh "$groot/init"
chmod 0755 "$groot/init"
echo "root:x:0:0:root:/:/bin/sh" >"$groot/etc/passwd"
echo "likwid-user:x:1000:1000::/tmp:/bin/sh" >>"$groot/etc/passwd"
printf 'root:x:0:\nlikwid-user:x:1000:\n' >"$groot/etc/group"
objcopy --strip-debug "$rel/likwid-accessD" "$groot/opt/lwa/likwid-accessD"
objcopy --strip-debug "$rel/likwid-access" "$groot/opt/lwa/likwid-access"
objcopy --strip-debug "$rel/liblikwid_access.so" "$groot/opt/lwa/lib/liblikwid_access.so.0"
ln -s liblikwid_access.so.0 "$groot/opt/lwa/lib/liblikwid_access.so"
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -pedantic -pthread -O2 -Iinclude -Ic-tests tests/vm/vm_checks.c \
    -L"$rel" -llikwid_access -Wl,-rpath,/opt/lwa/lib -o "$groot/opt/lwa/vm_checks"
# busybox's shell runs its own applets for bare names (a setpriv without --reuid): the real
# tools live outside /bin and are called by path; getcap on PATH for likwid-access doctor.
mkdir -p "$groot/usr/local/bin" "$groot/usr/sbin"
cp "$(command -v setpriv)" "$(command -v setcap)" "$groot/usr/local/bin/"
cp "$(command -v getcap)" "$groot/usr/sbin/"
for bin in "$rel/likwid-accessD" "$rel/likwid-access" "$rel/liblikwid_access.so" "$groot/opt/lwa/vm_checks" \
    "$(command -v setpriv)" "$(command -v setcap)" "$(command -v getcap)"; do
    ldd "$bin" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'
done | sort -u | while read -r lib; do
    [[ $lib == */liblikwid_access.so* ]] && continue
    mkdir -p "$groot$(dirname "$lib")"
    cp -L "$lib" "$groot$lib"
done
chown -R 0:0 "$groot"
(cd "$groot" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"
echo "vm-test: guest root $(du -sh "$work/initrd.cpio" | cut -f1) (busybox, msr.ko, our binaries, vm_checks, setpriv, setcap, getcap, $(find "$groot/lib" "$groot/lib64" -name '*.so*' 2>/dev/null | wc -l) shared libraries)"

# ---- one boot per model ----------------------------------------------------------------------
total_pass=0 total_fail=0
summary=()
for m in "${models[@]}"; do
    echo "=== $m: qemu -accel tcg -smp 2 -cpu ${cpu_of[$m]}"
    : >"$work/results-$m.log"
    start=$(date +%s%N)
    rc=0
    timeout -k 5 "${VM_TIMEOUT:-480}" qemu-system-x86_64 -accel tcg -cpu "${cpu_of[$m]}" -smp 2 -m 512 \
        -nodefaults -no-user-config -display none -no-reboot \
        -serial "file:$work/console-$m.log" -serial "file:$work/results-$m.log" \
        -kernel "$kernel_dir/vmlinux" -initrd "$work/initrd.cpio" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init lwa.table=$m${VERBOSE:+ lwa.verbose=$VERBOSE}" \
        >"$work/qemu-$m.log" 2>&1 || rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    secs=$((ms / 1000)).$((ms % 1000 / 100))
    tr -d '\r' <"$work/results-$m.log" >"$work/results-$m.txt"
    grep -v '^VM-TEST-END$' "$work/results-$m.txt" || true
    p=$(grep -c '^PASS ' "$work/results-$m.txt" || true)
    f=$(grep -c '^FAIL ' "$work/results-$m.txt" || true)
    if ! grep -q '^VM-TEST-END$' "$work/results-$m.txt"; then
        echo "FAIL $m: the guest did not finish (qemu exit $rc after $secs s); last console lines:"
        grep -v 'TCG doesn.t support' "$work/qemu-$m.log" | tail -n 5 | sed 's/^/    | /'
        tail -n 20 "$work/console-$m.log" | tr -d '\r' | sed 's/^/    | /'
        f=$((f + 1))
    fi
    printf '=== %s: %d passed, %d failed in %s s\n' "$m" "$p" "$f" "$secs"
    summary+=("$(printf '%-5s %-30s %3d passed %2d failed %6s s' "$m" "${cpu_of[$m]}" "$p" "$f" "$secs")")
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
done
printf '%s\n' "${summary[@]}"
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
