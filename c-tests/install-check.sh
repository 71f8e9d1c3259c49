#!/usr/bin/env bash
# make install into a scratch DESTDIR: files, SONAME links, pkg-config, and a program built
# with `pkg-config --cflags --libs likwid-access` that runs against the installed library.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
prefix=/opt/likwid-access
make -s install DESTDIR="$dest" PREFIX="$prefix" >"$dest/install.log"
fail=0
check() { if ! eval "$1"; then echo "FAIL install: $1"; fail=1; fi; }
lib=$dest$prefix/lib
check '[ -x "$dest$prefix/sbin/likwid-accessD" ] && [ -x "$dest$prefix/bin/likwid-access" ]'
check '[ -f "$dest$prefix/include/likwid_access.h" ] && [ -f "$dest$prefix/include/likwid_access.f90" ]'
check '[ -f "$dest$prefix/share/man/man1/likwid-access.1" ] && [ -f "$dest$prefix/share/man/man8/likwid-accessD.8" ]'
check 'man -l "$dest$prefix/share/man/man8/likwid-accessD.8" 2>/dev/null | grep -q "likwid-accessD - hardened"'
check '"$dest$prefix/bin/likwid-access" --help | grep -q "^usage: likwid-access COMMAND"'
check '[ "$(readlink "$lib/liblikwid_access.so")" = liblikwid_access.so.0 ]'
check '[ -f "$lib/liblikwid_access.so.0" ]'
check 'readelf -d "$lib/liblikwid_access.so.0" | grep -q "SONAME.*liblikwid_access.so.0"'
check 'grep -q "chmod u+s $prefix/sbin/likwid-accessD" "$dest/install.log"'
check 'grep -q "setcap cap_dac_override,cap_sys_rawio=ep $prefix/sbin/likwid-accessD" "$dest/install.log"'
# The library has the installed daemon path compiled in (make install rebuilt it for PREFIX).
check 'grep -aq "$prefix/sbin/likwid-accessD" "$lib/liblikwid_access.so.0"'
flags=$(PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags --libs likwid-access)
cc -std=c11 -Wall -Wextra -Werror -pedantic c-tests/demo.c $flags -Wl,-rpath,"$lib" -o "$dest/demo"
check 'readelf -d "$dest/demo" | grep -q "NEEDED.*liblikwid_access.so.0"'
"$dest$prefix/bin/likwid-access" sim "$dest/m" --cpu zen4 --cpus 2 >/dev/null
check 'LIKWID_ACCESS_ROOT=$dest/m LIKWID_ACCESSD=$dest$prefix/sbin/likwid-accessD "$dest/demo" >"$dest/demo.log"'
# The installed Fortran module compiles and links against the installed library.
if command -v gfortran >/dev/null 2>&1; then
    check '(cd "$dest" && gfortran -c "$dest$prefix/include/likwid_access.f90" && printf "program p\n use likwid_access\n if (HPMinit() /= 0) stop 1\n call HPMfinalize()\nend program p\n" >p.f90 && gfortran p.f90 likwid_access.o -L"$lib" -llikwid_access -Wl,-rpath,"$lib" -o p && ./p)'
fi
make -s uninstall DESTDIR="$dest" PREFIX="$prefix"
check '[ -z "$(find "$dest$prefix" -type f -o -type l)" ]'
# Put the default build back so later steps use the default daemon path.
make -s build >/dev/null
if [ $fail = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
