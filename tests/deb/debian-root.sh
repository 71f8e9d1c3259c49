#!/usr/bin/env bash
# tests/deb/debian-root.sh - print the path of a cached, pristine Debian bookworm root for
# the package test, making it first when missing (debootstrap, as root).
#
# The cache lives outside the repository, per machine: $LIKWID_ACCESS_DEB_CACHE, default
# /var/cache/likwid-access-deb. Its name carries a hash of what it holds, so a change of the
# list below makes a new root instead of reusing a stale one. Tests never write into it: they
# mount an overlay on top (tests/deb/deb-test.sh), so each run starts from the same clean root.
# The root holds the build tools the test needs (gcc, pkg-config, setcap) and, downloaded but
# not installed, Debian's likwid: the test installs that with apt like an admin would.
set -euo pipefail
suite=bookworm
mirror=${LIKWID_ACCESS_DEB_MIRROR:-http://deb.debian.org/debian}
include=gcc,libc6-dev,pkg-config,libcap2-bin,ca-certificates
download=likwid
cache=${LIKWID_ACCESS_DEB_CACHE:-/var/cache/likwid-access-deb}
key=$(printf '%s\n' "$suite" "$mirror" "$include" "$download" | sha256sum | cut -c1-12)
root=$cache/$suite-$key
if [[ -e $root/.complete ]]; then
    echo "$root"
    exit 0
fi
[[ $(id -u) == 0 ]] || { echo "debian-root.sh: making $root needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-root.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
# Another run may have made it while this one waited for the lock.
if [[ -e $root/.complete ]]; then echo "$root"; exit 0; fi
tmp=$(mktemp -d "$cache/.new.XXXXXX")
chmod 0755 "$tmp"   # the root directory of the root: users in it must traverse it
trap 'umount "$tmp/proc" 2>/dev/null || true; rm -rf "$tmp"' EXIT
echo "debian-root.sh: debootstrap $suite into $root (once per machine)" >&2
nice -n 10 debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 ||
    { tail -20 "$tmp.log" >&2; rm -f "$tmp.log"; exit 1; }
rm -f "$tmp.log"
# Package lists and likwid's .debs, so the test's `apt-get install likwid` needs no network.
printf 'deb %s %s main\n' "$mirror" "$suite" >"$tmp/etc/apt/sources.list"
cp /etc/resolv.conf "$tmp/etc/resolv.conf"
chroot "$tmp" apt-get update -qq
chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends $download >/dev/null
touch "$tmp/.complete"
mv "$tmp" "$root"
trap - EXIT
echo "$root"
