#!/usr/bin/env bash
# c-tests/run.sh - build and run the C tests of likwid-access.
#
# Usage (from the repository root):   c-tests/run.sh [NAME...]
#   NAME: run only these tests (e.g. `test_fork` or `fork`); default: all.
#
# Needs target/release/{liblikwid_access.so,likwid-accessD,likwid-access}
# and include/likwid_access.h (build with `cargo build --release` first).
#
# Every test_*.c is compiled into target/c-tests/ and run against a fresh
# simulated machine (`likwid-access sim DIR --cpu zen4 --cpus 8`; test_sparse_ids
# gets `--cpu-list 0,3,7`) with LIKWID_ACCESS_ROOT=DIR and
# LIKWID_ACCESSD=target/release/likwid-accessD, under `timeout`.
# c-tests/header_cxx.cpp is compiled and linked as C++17 (never run).
# Every test_*.f90 is compiled with gfortran against include/likwid_access.f90 and
# run the same way (skipped, or failed under CI=true, when gfortran is missing).
#
# Environment:
#   VALGRIND=1     run each test under valgrind (memcheck; definite leaks and
#                  memory errors fail the test).  Timeouts are multiplied by 5,
#                  and the tests scale their own alarm() the same way.
#   CI=true        a skipped test (exit 77) counts as a failure.
#   TEST_TIMEOUT   seconds per test (default 120).
#   CC, CXX, FC    compilers (default cc, g++, gfortran).
#   VERBOSE=1      show every test's output, not only a failing test's.
#
# Exit code 0 when nothing failed.  The last line is
#   "N passed, N failed" (plus ", N skipped" when something was skipped).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
REL=$ROOT_DIR/target/release
LIB=$REL/liblikwid_access.so
DAEMON=$REL/likwid-accessD
TOOL=$REL/likwid-access
HEADER=$ROOT_DIR/include/likwid_access.h
BUILD=$ROOT_DIR/target/c-tests
CC=${CC:-cc}
CXX=${CXX:-g++}
FC=${FC:-gfortran}
VALGRIND=${VALGRIND:-0}
CI=${CI:-}
TIMEOUT=${TEST_TIMEOUT:-120}
VERBOSE=${VERBOSE:-0}
if [[ $VALGRIND == 1 ]]; then
    TIMEOUT=$((TIMEOUT * 5))
fi

missing=0
for f in "$LIB" "$DAEMON" "$TOOL" "$HEADER"; do
    if [[ ! -e $f ]]; then
        echo "run.sh: missing $f (build the project first: cargo build --release)" >&2
        missing=1
    fi
done
if [[ $missing == 1 ]]; then
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ $VALGRIND == 1 ]] && ! command -v valgrind >/dev/null 2>&1; then
    echo "run.sh: VALGRIND=1 but valgrind is not installed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

mkdir -p "$BUILD/logs"

TMPDIRS=()
cleanup() {
    local d
    for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
        [[ -n $d && -d $d ]] && rm -rf -- "$d"
    done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+ ($2)}"; failed=$((failed + 1)); }
skip() {
    if [[ $CI == true ]]; then
        echo "FAIL $1 (skipped, but CI=true: $2)"
        failed=$((failed + 1))
    else
        echo "SKIP $1: $2"
        skipped=$((skipped + 1))
    fi
}
show_log() { sed 's/^/    | /' "$1"; }

# ---- which tests ----------------------------------------------------------
all_tests=()
for src in c-tests/test_*.c; do
    all_tests+=("$(basename "$src" .c)")
done
for src in c-tests/test_*.f90; do
    all_tests+=("$(basename "$src" .f90)")
done
# Script tests (root, private mount namespaces): the daemon as LIKWID starts it, spoken to by a
# LIKWID 5 client written from the protocol facts (wire_compat); setuid and setcap copies used
# by unprivileged users (privilege); our library on Debian's likwid-accessD (on_likwid); the
# same wire requests answered by both daemons (differential); the daemon's log channel recording,
# full and absent while test_rlimits and test_denied run (faults); the root-started service with
# three users, a cpuset, a hand-over, admin reset, SIGTERM and SIGKILL (service).
SCRIPT_TESTS=(wire_compat privilege on_likwid differential faults service)
selected=()
if [[ $# -gt 0 ]]; then
    for want in "$@"; do
        want=${want%.c}
        want=${want%.f90}
        want=${want#c-tests/}
        [[ $want == test_* || $want == header_cxx || " ${SCRIPT_TESTS[*]} " == *" $want "* ]] || want=test_$want
        selected+=("$want")
    done
else
    selected=("${all_tests[@]}" header_cxx)
    # Script tests run the daemon natively in mount namespaces; valgrind adds nothing there.
    [[ $VALGRIND == 1 ]] || selected+=("${SCRIPT_TESTS[@]}")
fi

# If the library has a SONAME (e.g. liblikwid_access.so.0) that target/release
# lacks, the test programs (which record the SONAME) could not load it: put a
# symlink under the test build directory and add that to the rpath.
RPATH=$REL
soname=$(readelf -d "$LIB" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p' || true)
if [[ -n $soname && ! -e $REL/$soname ]]; then
    mkdir -p "$BUILD/lib"
    ln -sfn "$LIB" "$BUILD/lib/$soname"
    RPATH=$REL:$BUILD/lib
fi

CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic -pthread -g -O2 -Iinclude -Ic-tests)
LDFLAGS=(-Ltarget/release -llikwid_access "-Wl,-rpath,$RPATH")

# sim arguments per test
sim_args() {
    case $1 in
        test_sparse_ids) echo "--cpu zen4 --cpu-list 0,3,7" ;;
        test_many_cpus) echo "--cpu zen4 --cpus 256" ;;
        test_pci) echo "--cpu skx --cpus 4 --sockets 2" ;;
        test_pci_icx) echo "--cpu icx --cpus 4 --sockets 2" ;;
        *) echo "--cpu zen4 --cpus 8" ;;
    esac
}

for name in "${selected[@]}"; do
    log=$BUILD/logs/$name.log
    : >"$log"

    if [[ $name == header_cxx ]]; then
        if "$CXX" -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude \
            -o "$BUILD/header_cxx" c-tests/header_cxx.cpp "${LDFLAGS[@]}" >"$log" 2>&1; then
            pass header_cxx
        else
            show_log "$log"
            fail header_cxx "C++ compile/link"
        fi
        continue
    fi

    if [[ " ${SCRIPT_TESTS[*]} " == *" $name "* ]]; then
        rc=0
        case $name in
            wire_compat)
                "$CC" "${CFLAGS[@]}" -o "$BUILD/raw_likwid_client" c-tests/raw_likwid_client.c >"$log" 2>&1 &&
                    timeout -k 10 "$TIMEOUT" c-tests/compat.sh "$BUILD/raw_likwid_client" "$DAEMON" >>"$log" 2>&1 </dev/null || rc=$?
                ;;
            faults)
                "$CC" "${CFLAGS[@]}" -o "$BUILD/test_rlimits" c-tests/test_rlimits.c "${LDFLAGS[@]}" >"$log" 2>&1 &&
                    "$CC" "${CFLAGS[@]}" -o "$BUILD/test_denied" c-tests/test_denied.c "${LDFLAGS[@]}" >>"$log" 2>&1 &&
                    timeout -k 10 "$TIMEOUT" c-tests/faults.sh "$BUILD" "$DAEMON" "$TOOL" >>"$log" 2>&1 </dev/null || rc=$?
                ;;
            privilege) timeout -k 10 "$TIMEOUT" c-tests/privilege.sh >"$log" 2>&1 </dev/null || rc=$? ;;
            service) timeout -k 10 "$TIMEOUT" c-tests/service.sh >"$log" 2>&1 </dev/null || rc=$? ;;
            on_likwid)
                "$CC" "${CFLAGS[@]}" -o "$BUILD/on_likwid" c-tests/on_likwid.c "${LDFLAGS[@]}" >"$log" 2>&1 &&
                    timeout -k 10 "$TIMEOUT" c-tests/on_likwid.sh "$BUILD/on_likwid" "$DAEMON" >>"$log" 2>&1 </dev/null || rc=$?
                ;;
            differential)
                "$CC" "${CFLAGS[@]}" -o "$BUILD/differential" c-tests/differential.c >"$log" 2>&1 &&
                    timeout -k 10 "$TIMEOUT" c-tests/differential.sh "$BUILD/differential" "$DAEMON" >>"$log" 2>&1 </dev/null || rc=$?
                ;;
        esac
        [[ $VERBOSE == 1 && $rc == 0 ]] && show_log "$log"
        case $rc in
            0) pass "$name" ;;
            77) skip "$name" "$(grep -m1 '^SKIP:' "$log" | sed 's/^SKIP:[[:space:]]*//')" ;;
            *) show_log "$log"; fail "$name" "exit code $rc" ;;
        esac
        continue
    fi

    src=c-tests/$name.c
    [[ -f $src ]] || src=c-tests/$name.f90
    if [[ ! -f $src ]]; then
        fail "$name" "no such test: c-tests/$name.c or .f90"
        continue
    fi
    bin=$BUILD/$name
    if [[ $src == *.f90 ]]; then
        if ! command -v "$FC" >/dev/null 2>&1; then
            skip "$name" "no Fortran compiler ($FC)"
            continue
        fi
        # The module first (its .mod goes to a directory of its own), then the program.
        compile=("$FC" -std=f2008 -Wall -Wextra -Werror -g -O2 -J "$BUILD/fortran" -I "$BUILD/fortran"
            -o "$bin" include/likwid_access.f90 "$src" "${LDFLAGS[@]}")
        mkdir -p "$BUILD/fortran"
    else
        compile=("$CC" "${CFLAGS[@]}" -o "$bin" "$src" "${LDFLAGS[@]}")
    fi
    if ! "${compile[@]}" >"$log" 2>&1; then
        show_log "$log"
        fail "$name" "compile"
        continue
    fi

    sim=$(mktemp -d "${TMPDIR:-/tmp}/lwa-ctest.XXXXXX")
    TMPDIRS+=("$sim")
    # shellcheck disable=SC2046
    if ! "$TOOL" sim "$sim" $(sim_args "$name") >>"$log" 2>&1; then
        show_log "$log"
        fail "$name" "could not create the simulated machine: likwid-access sim $sim $(sim_args "$name")"
        rm -rf -- "$sim"
        continue
    fi

    cmd=("$bin")
    if [[ $VALGRIND == 1 ]]; then
        cmd=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --trace-children=no -q "$bin")
    fi

    rc=0
    LIKWID_ACCESS_ROOT=$sim LIKWID_ACCESSD=$DAEMON VALGRIND=$VALGRIND \
        timeout -k 10 "$TIMEOUT" "${cmd[@]}" >>"$log" 2>&1 </dev/null || rc=$?

    if [[ $VERBOSE == 1 && ( $rc == 0 || $rc == 77 ) ]]; then
        show_log "$log"
    fi
    case $rc in
        0) pass "$name" ;;
        77)
            reason=$(grep -m1 '^SKIP:' "$log" | sed 's/^SKIP:[[:space:]]*//' || true)
            skip "$name" "${reason:-skipped}"
            ;;
        *)
            show_log "$log"
            case $rc in
                99) why="valgrind reported errors" ;;
                124 | 137) why="timed out after ${TIMEOUT}s" ;;
                *)
                    if ((rc > 128)); then
                        why="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"
                    else
                        why="exit code $rc"
                    fi
                    ;;
            esac
            fail "$name" "$why"
            ;;
    esac
    rm -rf -- "$sim"
done

summary="$passed passed, $failed failed"
if ((skipped > 0)); then
    summary+=", $skipped skipped"
fi
echo "$summary"
((failed == 0))
