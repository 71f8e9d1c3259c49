#!/usr/bin/env bash
# make daemon-layout: regenerate src/bin/likwid-accessD.ld, the list of the functions the spawned
# daemon runs, which the linker places side by side (build.rs passes the script to the daemon's
# link only).
#
# Why: the kernel maps a file page fault's neighbours too ("fault-around", 64 kB windows of the
# page cache, mm/memory.c do_fault_around), and every page of our executable that only this
# daemon maps counts as its private memory (Private_Clean in /proc/PID/smaps). The ~140 kB of
# code the daemon runs was spread over all 800 kB of .text, so every window was mapped. Placed
# together, they touch 3-4 windows. A stale list costs memory only, never correctness: functions
# it does not name stay in .text, patterns that match nothing are ignored.
#
# How: callgrind (--demangle=no) records the symbols executed in the daemon while it starts, serves
# batches of MSR reads, 2000 single reads and batches of PCI reads on a simulated Skylake-SP
# (the paths bench/bench.sh measures). Each becomes an input-section pattern `.text.SYMBOL` (rustc
# puts every function in its own section): the legacy hash (`17h<16 hex>E`), LLVM's
# `.llvm.<n>` suffix and v0 crate disambiguators are wildcards, so a rebuild with another
# compiler still matches, unless the wildcard would also take other instantiations of a generic
# function (then the exact symbol is named).
#
# `bench/daemon-layout.sh --check` writes nothing: it lists the functions the daemon ran that the
# built daemon has outside its .text.hot (the list is stale: run `make daemon-layout`) and fails
# when there are any.
set -euo pipefail
cd "$(dirname "$0")/.."
rel=$PWD/target/release
out=src/bin/likwid-accessD.ld
check=
[ "${1:-}" = --check ] && check=1
command -v valgrind >/dev/null || { echo "daemon-layout: needs valgrind" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Iinclude bench/bench.c -L"$rel" -llikwid_access -Wl,-rpath,"$rel" -o "$tmp/bench"
"$rel/likwid-access" sim "$tmp/m" --cpu skx --cpus 2 >/dev/null
# The daemon's read-only data is placed like its code: the input sections it reads first, right
# after the loader's tables at the start of the file, where the fault-around window of the
# loader's first access maps them too (the window starts at the mapping's start). rustc names
# most of them after nothing (`.rodata..Lanon.<hash>.<n>`), so the daemon is relinked with a
# link map, the same binary is traced by valgrind's lackey (the address of every load), and the
# map names the section of each address read. Not with --check (it checks the code only).
mkdir "$tmp/mem"
if [ -z "$check" ]; then
    cargo rustc --quiet --release --bin likwid-accessD -- -C link-arg=-Wl,-Map="$tmp/map"
fi
# Runs `bench MODE 0xC1 2` under callgrind (the daemon's profile DIR/NAME.PID) and, unless
# checking, under lackey ($tmp/mem/TAG-NAME.PID).
traced() { # DIR NAME TAG MODE
    valgrind --tool=callgrind --demangle=no --trace-children=yes --callgrind-out-file="$1/$2.%p" -q \
        "$tmp/bench" "$4" 0xC1 2
    if [ -z "$check" ]; then
        valgrind --tool=lackey --trace-mem=yes --trace-children=yes --log-file="$tmp/mem/$3-$2.%p" \
            "$tmp/bench" "$4" 0xC1 2 >/dev/null
    fi
}
export -f traced
export check tmp
export LIKWID_ACCESSD=$rel/likwid-accessD LIKWID_ACCESS_ROOT=$tmp/m
for mode in cg cgs cgp; do
    mkdir "$tmp/$mode"
    traced "$tmp/$mode" p sim $mode
done
# As root, also the real paths, as bench.sh measures them: register-store files as /dev/cpu/N/msr
# and the simulated /proc/cpuinfo in a private mount namespace; the daemon runs as root there and
# takes its privilege paths (capabilities).
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    mkdir "$tmp/cgroot"
    unshare -m --propagation private bash -euc '
        source c-tests/private-dev.sh
        private_dev "$1" 2
        mount --bind "$1/m/proc/cpuinfo" /proc/cpuinfo
        unset LIKWID_ACCESS_ROOT
        for mode in cg cgs; do
            traced "$1/cgroot" $mode root $mode
        done' layout "$tmp"
    # A site policy (site.rs: trusted only when root owns it): an allowlist and a PCI numbering.
    cp -a "$tmp/m" "$tmp/site"
    mkdir -p -m 0755 "$tmp/site/etc/likwid-access"
    grep -v '^#' src/policy/tables/skx.txt >"$tmp/site/etc/likwid-access/msr-allowlist"
    echo 5.2 >"$tmp/site/etc/likwid-access/pci-numbering"
    mkdir "$tmp/cgsite"
    LIKWID_ACCESS_ROOT=$tmp/site traced "$tmp/cgsite" p site cg
else
    echo "daemon-layout: not root: the real paths (capabilities, /dev/cpu) and a site policy are not traced" >&2
fi
# The symbols with instructions of their own in the daemon (callgrind's name compression: "fn=(id)
# name" defines an id, later lines repeat "fn=(id)"); Rust symbols exist only in our executable
# (std is linked into it), and only those in its symbol table are kept.
for f in "$tmp"/cg*/*; do
    grep -q "^cmd:.*likwid-accessD" "$f" || continue
    awk '/^c?fn=/ { id = $1; sub(/^c?fn=/, "", id); n = $0; sub(/^[^ ]* ?/, "", n)
                    if (n != "") fns[id] = n; if ($0 ~ /^fn=/) print fns[id] }' "$f"
done | sort -u >"$tmp/ran"
nm --defined-only "$rel/likwid-accessD" | awk '$2 ~ /^[tTwW]$/' >"$tmp/nm"
awk '{ print $3 }' "$tmp/nm" | sort -u >"$tmp/all"
# With every other name at the same address: LLVM merges identical functions into aliases, and
# the section is named after the one that was kept.
awk 'NR == FNR { ran[$1] = 1; next } { names[$1] = names[$1] " " $3; if ($3 in ran) hit[$1] = 1 }
     END { for (a in hit) { n = split(names[a], s, " "); for (i = 1; i <= n; i++) print s[i] } }' \
    "$tmp/ran" "$tmp/nm" | sort -u >"$tmp/ours"
if [ -n "$check" ]; then
    read -r start size < <(readelf -SW "$rel/likwid-accessD" |
        awk '$2 == ".text.hot" { print $4, $6 } $3 == ".text.hot" { print $5, $7 }')
    [ -n "${start:-}" ] || { echo "daemon-layout: the daemon has no .text.hot" >&2; exit 1; }
    nm -S --defined-only "$rel/likwid-accessD" | awk -v lo=$((16#$start)) -v hi=$((16#$start + 16#$size)) '
        NR == FNR { ran[$1] = 1; next }
        NF == 4 && ($4 in ran) { a = 0; h = "0123456789abcdef"; x = tolower($1)
            for (i = 1; i <= length(x); i++) a = a * 16 + index(h, substr(x, i, 1)) - 1
            if (a < lo || a >= hi) { n++; print "  outside .text.hot: " $4 } }
        END { if (n) { print "daemon-layout: " n " functions the daemon ran are outside .text.hot: run make daemon-layout"; exit 1 }
              print "daemon-layout: every function the daemon ran is in .text.hot" }' "$tmp/ours" -
    exit
fi
# One pattern per symbol: wildcards where they take no other symbol of this build.
awk -v all="$tmp/all" '
    function pattern(s) {
        sub(/\.llvm\.[0-9]+$/, "", s)
        sub(/17h[0-9a-f]+E$/, "17h", s)
        gsub(/Cs[0-9A-Za-z]+_/, "Cs*_", s)
        return s "*"
    }
    function glob_re(p) { gsub(/[$.()+^|{}\[\]]/, "\\\\&", p); gsub(/\*/, ".*", p); return "^" p "$" }
    BEGIN { while ((getline s <all) > 0) syms[++n] = s }
    /^(_ZN|_R)/ {
        p = pattern($0); re = glob_re(p); hits = 0
        for (i = 1; i <= n && hits < 2; i++) if (syms[i] ~ re) hits++
        exact = $0; sub(/\.llvm\.[0-9]+$/, "", exact)
        q = hits > 1 ? exact "*" : p
        if (!(q in seen)) { seen[q] = 1; print q }
    }' "$tmp/ours" >"$tmp/patterns"
# The read-only data: lackey logs each load and store as ` L ADDR,SIZE`. Valgrind loads a PIE
# executable at 0x108000 (checked: the daemon's `main` must have run there); the data before
# its first executable section is its read-only data. Each address read there is looked up in
# the link map (lld's: VMA LMA SIZE ALIGN, then `file:(section)` under its output section).
base=$((0x108000))
main=$(nm --defined-only "$rel/likwid-accessD" | awk '$3 == "main" { print $1 }')
text=$(readelf -SW "$rel/likwid-accessD" | awk '$2 == ".text" { print $4 } $3 == ".text" { print $5 }' | head -n1)
hexdigits() { printf '%08x' "$1"; }
for f in "$tmp"/mem/*; do
    grep -q "Command: .*likwid-accessD" "$f" || continue
    grep -q "^I  $(hexdigits $((base + 16#$main)))," "$f" ||
        { echo "daemon-layout: valgrind did not load the daemon at $(hexdigits $base)" >&2; exit 1; }
    awk -v lo=$base -v hi=$((base + 16#$text)) '
        function hex(x,   a, i) { a = 0; x = tolower(x)
            for (i = 1; i <= length(x); i++) a = a * 16 + index("0123456789abcdef", substr(x, i, 1)) - 1
            return a }
        /^ [LM] 00/ { split($2, p, ","); a = hex(p[1]); if (a >= lo && a < hi) print a - lo }' "$f"
done | sort -n -u >"$tmp/read"
awk 'NR == FNR { read[++n] = $1; next }
     function hex(x,   a, i) { a = 0; x = tolower(x)
         for (i = 1; i <= length(x); i++) a = a * 16 + index("0123456789abcdef", substr(x, i, 1)) - 1
         return a }
     $NF ~ /^\.rodata/ && NF == 5 { out = 1; next }
     NF == 5 && $NF ~ /^\./ { out = 0 }
     out && NF == 5 && $NF ~ /:\(\.rodata/ {
         a = hex($1); s = hex($3); name = $NF; sub(/^.*:\(/, "", name); sub(/\)$/, "", name)
         for (i = 1; i <= n; i++) if (read[i] >= a && read[i] < a + s) { print name; break }
     }' "$tmp/read" "$tmp/map" |
    awk '{ sub(/\.llvm\.[0-9]+$/, ".llvm.*"); sub(/17h[0-9a-f]+E$/, "17h*"); gsub(/Cs[0-9A-Za-z]+_/, "Cs*_")
           if (!($0 in seen)) { seen[$0] = 1; print } }' >"$tmp/rodata"
{
    echo "/* Generated by bench/daemon-layout.sh (make daemon-layout) from callgrind runs of the daemon: the"
    echo " * functions it runs, side by side at the end of its code, then .init and .fini, then .plt (which"
    echo " * it runs too), so that the kernel's 64 kB fault-around windows map few pages of the rest. Its own"
    echo " * load segment (AT: lld starts one there, a page apart), so its own mapping: a window is cut"
    echo " * at a mapping's ends, and the cold code's mapping is never touched."
    echo " * $(wc -l <"$tmp/patterns") symbols; a stale list costs memory only. Passed by build.rs to the daemon's link. */"
    echo "SECTIONS {"
    echo "  .text.hot : AT(ADDR(.text.hot)) {"
    echo "    *crt1.o(.text .text.*) *crti.o(.text .text.*) *crtbeginS.o(.text .text.*) *crtendS.o(.text .text.*)"
    echo "    *(.text.main)"
    awk '{ printf "    *(.text.%s .text.unlikely.%s)\n", $0, $0 }' "$tmp/patterns"
    echo "  }"
    echo "  .init : { KEEP(*(SORT_NONE(.init))) }"
    echo "  .fini : { KEEP(*(SORT_NONE(.fini))) }"
    echo "}"
    echo "INSERT AFTER .text;"
    echo "/* The unwinder's tables (read on a panic only) both after .rodata, so that the loader's pages at"
    echo " * the start (dynamic symbols, relocations) and .rodata share windows with each other only. */"
    echo "SECTIONS {"
    echo "  .gcc_except_table : { *(.gcc_except_table .gcc_except_table.*) }"
    echo "}"
    echo "INSERT AFTER .eh_frame;"
    echo "/* The $(wc -l <"$tmp/rodata") input sections of read-only data the daemon read (lackey runs of the same"
    echo " * paths), before the rest of .rodata: in the first 64 kB of the file with the loader's tables. */"
    echo "SECTIONS {"
    echo "  .rodata.hot : {"
    awk '{ printf "    *(%s)\n", $0 }' "$tmp/rodata"
    echo "  }"
    echo "}"
    echo "INSERT BEFORE .rodata;"
} >"$out"
echo "daemon-layout: $out: $(wc -l <"$tmp/patterns") symbols, $(wc -l <"$tmp/rodata") read-only data sections"
