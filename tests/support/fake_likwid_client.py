"""A stand-in LIKWID 5 client for tests/numbering.rs: it maps a file (named like a LIKWID
library, e.g. liblikwid.so.5.5) the way the dynamic loader maps a library, starts the daemon
as LIKWID does (fork + exec, the daemon's socket /tmp/likwid-<its pid>), sends the requests and
prints one line per reply: `TYPE CPU DEVICE REG -> ERRORCODE DATA`.

usage: fake_likwid_client.py DAEMON LIBRARY|- REQUEST...
  REQUEST: TYPE:CPU:DEVICE:REG[:DATA] with TYPE read, write or check (numbers in 0x hex or decimal)
The daemon's environment is this process's (the test sets LIKWID_ACCESS_ROOT on it).
"""
import mmap
import os
import socket
import struct
import subprocess
import sys
import time

RECORD = struct.Struct("<IIQiii4x")  # LIKWID 5's AccessDataRecord, 32 bytes
TYPES = {"read": 0, "write": 1, "check": 2}
EXIT = 3


def main(argv):
    daemon, library, requests = argv[1], argv[2], argv[3:]
    mapping = None
    if library != "-":
        with open(library, "rb") as f:
            mapping = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    proc = subprocess.Popen([daemon])
    path = f"/tmp/likwid-{proc.pid}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(2000):  # LIKWID retries about 1000 times 2.5 ms apart
        try:
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.0025)
    else:
        proc.kill()
        print(f"cannot connect to {path}", file=sys.stderr)
        return 1
    for req in requests:
        kind, cpu, device, reg, *data = req.split(":")
        value = int(data[0], 0) if data else 0
        sock.sendall(RECORD.pack(int(cpu, 0), int(reg, 0), value, int(device, 0), TYPES[kind], 3))
        reply = b""
        while len(reply) < RECORD.size:
            try:
                chunk = sock.recv(RECORD.size - len(reply))
            except ConnectionResetError:  # closed with our request unread
                chunk = b""
            if not chunk:
                # Its exit status tells why (a relay that the service refused exits non-zero).
                print(f"daemon closed the connection (daemon exit {proc.wait(timeout=20)})", file=sys.stderr)
                return 1
            reply += chunk
        _, _, rdata, _, _, code = RECORD.unpack(reply)
        print(f"{req} -> {code} {rdata:#x}", flush=True)
    sock.sendall(RECORD.pack(0, 0, 0, 0, EXIT, 3))
    sock.close()
    rc = proc.wait(timeout=10)
    if mapping is not None:
        mapping.close()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
