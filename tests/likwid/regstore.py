"""Helpers for tests/likwid/harness.sh: register-store files and request traces.

A register-store file (what `likwid-access sim` creates and the harness mounts as
/dev/cpu/N/msr) holds register R at byte offset 8*R, little-endian u64.

A trace has one line per served request: `OP CPU DEVICE REG DATA CODE`, OP read/write/check,
REG and DATA in 0x hex, CODE the LIKWID reply code name (NOERROR, RESTREG, NODEV, ...).

usage:
  regstore.py get FILE REG                 print the register's value (0x hex)
  regstore.py set FILE REG VALUE           store VALUE
  regstore.py add FILE REG DELTA           add DELTA (mod 2^64)
  regstore.py dump FILE                    every nonzero register, `0xREG 0xVALUE` per line
  regstore.py add-at FILE OFFSET DELTA     add DELTA to the little-endian u64 at byte OFFSET
                                           (PCI config space, /dev/mem: byte-addressed)
  regstore.py dashes OUTPUT                the counters likwid-perfctr printed as `-` (not
                                           measured) in its event tables, `EVENT COUNTER` each
  regstore.py dedupe TRACE...              unique accesses: reads and checks by (op, device,
                                           reg, code), writes by (device, reg, data, code)
  regstore.py errors TRACE                 the lines whose code is not NOERROR
  regstore.py verify TRACE MSRDIR          every register's last accepted MSR write is what
                                           its file holds (MSRDIR/N/msr); prints mismatches
  regstore.py verify-snapshot TRACE N[:M] DUMP0 DUMP1
                                           the same for the first N trace lines against dumps
                                           of CPU 0 and 1 taken at that moment (taken while
                                           the trace grew from N to M lines: any state in
                                           between)
"""
import os
import sys

STORE = 8


def reg_of(word):
    return int(word, 0)


def get(path, reg):
    with open(path, "rb") as f:
        f.seek(STORE * reg)
        data = f.read(8)
    return int.from_bytes(data.ljust(8, b"\0"), "little")


def put(path, reg, value):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, (value & (2**64 - 1)).to_bytes(8, "little"), STORE * reg)
    finally:
        os.close(fd)


def dump(path):
    """Nonzero registers, found through the file's data extents (the file is sparse)."""
    out = {}
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        off = 0
        while off < end:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            start -= start % STORE
            data = os.pread(fd, stop - start, start)
            for i in range(0, len(data) - STORE + 1, STORE):
                value = int.from_bytes(data[i : i + STORE], "little")
                if value:
                    out[(start + i) // STORE] = value
            off = stop
    finally:
        os.close(fd)
    return out


def add_at(path, offset, delta):
    fd = os.open(path, os.O_RDWR)
    try:
        old = int.from_bytes(os.pread(fd, 8, offset).ljust(8, b"\0"), "little")
        os.pwrite(fd, ((old + delta) & (2**64 - 1)).to_bytes(8, "little"), offset)
    finally:
        os.close(fd)


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def dashes(path):
    """Rows of likwid-perfctr's event tables (header `Event | Counter | ...`) with a `-` cell.

    LIKWID prints `-` for a counter it could not set up (its CHECK or a read failed) and still
    exits 0. The STAT tables repeat the rows with a ` STAT` suffix: one report per counter.
    """
    seen = []
    in_events = False
    with open(path, errors="replace") as f:
        for raw in f:
            if not raw.startswith("|"):
                if not raw.startswith("+"):
                    in_events = False
                continue
            row = cells(raw)
            if len(row) >= 2 and row[0] == "Event" and row[1] == "Counter":
                in_events = True
                continue
            if not in_events or len(row) < 3:
                continue
            event = row[0][: -len(" STAT")] if row[0].endswith(" STAT") else row[0]
            if any(c == "-" for c in row[2:]) and (event, row[1]) not in seen:
                seen.append((event, row[1]))
    for event, counter in seen:
        print(f"{event} {counter}")


def lines(paths):
    for path in paths:
        with open(path) as f:
            for raw in f:
                words = raw.split()
                if len(words) == 6 and not raw.startswith("#"):
                    yield words


def dedupe(paths):
    seen = set()
    for op, cpu, dev, reg, data, code in lines(paths):
        reg = hex(reg_of(reg))
        data = hex(reg_of(data))
        key = (op, dev, reg, data if op == "write" else "", code)
        if key in seen:
            continue
        seen.add(key)
        print(f"{op} {cpu} {dev} {reg} {data if op == 'write' else '0x0'} {code}")


def errors(path):
    for words in lines([path]):
        if words[5] != "NOERROR":
            print(" ".join(words))


def last_writes(trace, upto=None):
    last = {}
    for i, (op, cpu, dev, reg, data, code) in enumerate(lines([trace])):
        if upto is not None and i >= upto:
            break
        if op == "write" and dev == "0" and code == "NOERROR":
            last[(int(cpu), reg_of(reg))] = reg_of(data)
    return last


def read_dump(path):
    with open(path) as f:
        return {reg_of(r): reg_of(v) for r, v in (line.split() for line in f if line.strip())}


# How many trace lines after the dumps a write may appear and still explain what a file held:
# the daemon traces just after its access, and on a loaded machine it can be preempted in
# between, so a dump may see an access whose line came later.
LATE_LINES = 200


def verify_snapshot(trace, span, dumps):
    """Registers LIKWID had programmed when the measured program ran are in the files."""
    upto, _, until = span.partition(":")
    upto, until = int(upto), int(until or upto)
    values = [read_dump(d) for d in dumps]
    last = last_writes(trace, upto)
    # Values a register went through while the dumps were taken (trace lines upto..until),
    # and in the LATE_LINES lines after.
    passed = {}
    for i, (op, cpu, dev, reg, data, code) in enumerate(lines([trace])):
        if i >= until + LATE_LINES:
            break
        if i >= upto and op == "write" and dev == "0" and code == "NOERROR":
            passed.setdefault((int(cpu), reg_of(reg)), set()).add(reg_of(data))
    bad = 0
    for (cpu, reg), data in sorted(last.items()):
        have = values[cpu].get(reg, 0)
        if have != data and have not in passed.get((cpu, reg), ()):
            print(f"cpu {cpu} reg {reg:#x}: programmed {data:#x}, file held {have:#x} during the run")
            bad += 1
    programmed = sum(1 for d in last.values() if d)
    print(f"{programmed} registers programmed during the run, {bad} mismatches")
    return 1 if bad else 0


def verify(trace, msrdir):
    last = last_writes(trace)
    bad = 0
    for (cpu, reg), data in sorted(last.items()):
        have = get(os.path.join(msrdir, str(cpu), "msr"), reg)
        if have != data:
            print(f"cpu {cpu} reg {reg:#x}: last write {data:#x}, file holds {have:#x}")
            bad += 1
    programmed = sum(1 for d in last.values() if d)
    print(f"verified {len(last)} registers ({programmed} nonzero), {bad} mismatches")
    return 1 if bad else 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "get":
        print(hex(get(args[0], reg_of(args[1]))))
    elif cmd == "set":
        put(args[0], reg_of(args[1]), reg_of(args[2]))
    elif cmd == "add":
        reg = reg_of(args[1])
        put(args[0], reg, get(args[0], reg) + reg_of(args[2]))
    elif cmd == "add-at":
        add_at(args[0], reg_of(args[1]), reg_of(args[2]))
    elif cmd == "dashes":
        dashes(args[0])
    elif cmd == "dump":
        for reg, value in sorted(dump(args[0]).items()):
            print(f"{reg:#x} {value:#x}")
    elif cmd == "dedupe":
        dedupe(args)
    elif cmd == "errors":
        errors(args[0])
    elif cmd == "verify":
        return verify(args[0], args[1])
    elif cmd == "verify-snapshot":
        return verify_snapshot(args[0], args[1], args[2:4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
