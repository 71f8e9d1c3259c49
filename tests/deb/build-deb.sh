#!/usr/bin/env bash
# tests/deb/build-deb.sh DEB_DIR DEB_OUT - `make deb`: build likwid-access_VERSION_amd64.deb.
#
# dpkg-buildpackage writes its results into the parent of the source tree, so the tracked
# files are copied to DEB_DIR/src/likwid-access (a fixed path: cargo's cache in DEB_DIR/cargo
# is reused between builds and versions) and the .deb is moved to DEB_OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$1 out=$2
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper cargo:rustup; do
    command -v "${tool%%:*}" >/dev/null ||
        { echo "make deb: ${tool%%:*} is missing (install ${tool#*:})" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
debversion=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [[ $version != "$debversion" ]]; then
    echo "make deb: Cargo.toml says $version but debian/changelog says $debversion: add a changelog entry (dch -v $version)" >&2
    exit 1
fi
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd) out=$(cd "$out" && pwd)
src=$dir/src/likwid-access
rm -rf "$dir/src"
mkdir -p "$src"
# The files git tracks or would track (not target/, nothing ignored); a tree without git (a
# release tarball) is copied whole minus target/.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
        xargs -0 cp -P --preserve=timestamps --parents -t "$src"
else
    tar --exclude=./target -cf - . | tar -xf - -C "$src"
fi
echo "make deb: building in $src" >&2
(cd "$src" && CARGO_TARGET_DIR=$dir/cargo nice -n 10 dpkg-buildpackage -b -us -uc -d >"$dir/build.log" 2>&1) ||
    { tail -30 "$dir/build.log" >&2; echo "make deb: dpkg-buildpackage failed (log: $dir/build.log)" >&2; exit 1; }
deb=likwid-access_${version}_amd64.deb
if [[ $dir/src != "$out" ]]; then
    mv -f "$dir/src/$deb" "$out/$deb"
fi
rm -rf "$src"
echo "$out/$deb"
