#!/usr/bin/env bash
# tests/deb/deb-test.sh - `make deb-test`: build the package (`make deb`) and test it next to
# Debian's likwid in a throwaway Debian bookworm root.
#
# The root is an overlay over the cached pristine root of tests/deb/debian-root.sh, mounted in
# a private mount namespace (everything mounted vanishes with it), with its own /proc, a
# scratch tmpfs as /dev (the simulated /dev/cpu/N/msr files live there) and /sys. Nothing of
# the host's /etc or /dev is touched. The same package with the next version is built from a
# scratch copy of the tree (Cargo.toml there, not here, gets the new version). Then
# tests/deb/in-root.sh installs, upgrades and purges in the chroot; lintian checks the .deb.
# Exit: 0 passed, 1 failed, 77 skipped (not root / no debootstrap; CI=true fails instead).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [[ ${1:-} == --inner ]]; then
    w=$2
    set -e
    mnt=$w/mnt
    mkdir -p "$w/upper" "$w/work" "$mnt"
    mount -t overlay overlay -o "lowerdir=$3,upperdir=$w/upper,workdir=$w/work" "$mnt"
    mount -t proc proc "$mnt/proc"
    mount -t sysfs sysfs "$mnt/sys"
    mount -t tmpfs -o mode=0755 none "$mnt/dev"
    for node in null zero full random urandom tty; do
        touch "$mnt/dev/$node"
        mount --bind "/dev/$node" "$mnt/dev/$node"
    done
    mkdir "$mnt/dev/pts"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$mnt/dev/pts"
    ln -s pts/ptmx "$mnt/dev/ptmx"
    mount -t tmpfs -o mode=1777 none "$mnt/tmp"
    mkdir -p "$mnt/root/pkg"
    cp "$w/new.deb" "$w/next.deb" "$mnt/root/pkg/"
    cp "$repo/c-tests/demo.c" "$here/in-root.sh" "$mnt/root/"
    set +e
    chroot "$mnt" /bin/bash /root/in-root.sh
    exit $?
fi

skip() {
    if [[ ${CI:-} == true ]]; then
        echo "FAIL: cannot run the package test: $1 (CI=true never skips)"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: package test: $1"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root (debootstrap, chroot, mounts)"
for tool in debootstrap:debootstrap lintian:lintian dh:debhelper dpkg-buildpackage:dpkg-dev unshare:util-linux; do
    command -v "${tool%%:*}" >/dev/null || skip "${tool%%:*} is missing (apt-get install ${tool#*:})"
done
t_build=$(date +%s)
deb=$(cd "$repo" && make -s deb 2>&1 | tail -1)
if [[ ! -f $deb ]]; then
    echo "$deb"
    echo "FAIL: make deb"
    echo "0 passed, 1 failed"
    exit 1
fi
echo "make deb: $deb ($(($(date +%s) - t_build)) s)"

w=$(mktemp -d /tmp/likwid-deb-test.XXXXXX)
trap 'rm -rf "$w"' EXIT
pass=0 fail=0
outcome() {   # STATUS NAME
    echo "$1  $2"
    if [[ $1 == PASS ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}
t0=$(date +%s)
base=$("$here/debian-root.sh") || { echo "FAIL: no Debian root"; echo "0 passed, 1 failed"; exit 1; }
t1=$(date +%s)
echo "Debian root: $base ($((t1 - t0)) s)"

# The next version, built like `make deb` from a scratch copy with Cargo.toml, Cargo.lock and
# debian/changelog bumped there. Its own cargo cache (target/debian-next): in a shared one,
# cargo would take the other version's unhashed liblikwid_access.so for fresh.
version=$(dpkg-deb -f "$deb" Version)
next=${version%.*}.$((${version##*.} + 1))
mkdir -p "$w/scratch"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
    xargs -0 cp -P --preserve=timestamps --parents -t "$w/scratch")
sed -i "0,/^version = \"$version\"/s//version = \"$next\"/" "$w/scratch/Cargo.toml"
sed -i "/^name = \"likwid-access\"$/{n;s/^version = \"$version\"/version = \"$next\"/}" "$w/scratch/Cargo.lock"
{
    printf 'likwid-access (%s) unstable; urgency=medium\n\n  * Version bump for the upgrade test.\n\n' "$next"
    printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Maintainer)" \
        "$(date -R -u -d "@$(($(dpkg-parsechangelog -l "$repo/debian/changelog" -S Timestamp) + 1))")"
    cat "$repo/debian/changelog"
} >"$w/scratch/debian/changelog"
rm -rf "$w/scratch/.git"
if ! (cd "$w/scratch" && make -s deb DEB_DIR="$repo/target/debian-next" DEB_OUT="$w" >"$w/next-build.log" 2>&1); then
    tail -20 "$w/next-build.log"
    echo "FAIL: building version $next"
    echo "0 passed, 1 failed"
    exit 1
fi
t2=$(date +%s)
echo "next version $next built ($((t2 - t1)) s)"
cp "$deb" "$w/new.deb"
mv "$w/likwid-access_${next}_amd64.deb" "$w/next.deb"

# Reproducible: no build path of this machine in any file of the package.
mkdir "$w/x"
dpkg-deb -x "$deb" "$w/x"
if grep -rlaF -e "$repo" -e "$HOME/.cargo" -e "$HOME/.rustup" "$w/x"; then
    outcome FAIL "a build path is in the files above"
else
    outcome PASS "no build path in the package's files"
fi

unshare -m --propagation private "$0" --inner "$w" "$base" | tee "$w/in-root.log"
rc=${PIPESTATUS[0]}
t3=$(date +%s)
echo "in-root checks: $((t3 - t2)) s"
ip=$(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1 }' "$w/in-root.log")
if [[ -z $ip ]]; then
    outcome FAIL "in-root.sh ended early (exit $rc)"
else
    pass=$((pass + ip))
    fail=$((fail + $(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $3 }' "$w/in-root.log")))
    [[ $rc == 0 ]] || [[ $fail -gt 0 ]] || outcome FAIL "in-root.sh exit $rc"
fi

# lintian: no error, and no warning that debian/likwid-access.lintian-overrides does not
# explain (each override there carries its reason).
# (as nobody: lintian warns against running as root)
mkdir -m 0755 "$w/lint"
install -m 0644 "$deb" "$w/lint/"
chmod 0755 "$w"
runuser -u nobody -- lintian --fail-on error,warning --display-info "$w/lint/${deb##*/}" >"$w/lintian.out" 2>&1
lrc=$?
cat "$w/lintian.out"
if [[ $lrc == 0 ]]; then
    outcome PASS "lintian: no error, no warning without an override that says why"
else
    outcome FAIL "lintian (exit $lrc)"
fi
echo "lintian: $(($(date +%s) - t3)) s"
echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
