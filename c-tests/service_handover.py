"""The relay's side of a hand-over (mode 2 of the service socket), for service.sh: hands one
end of a socket pair to the service and speaks LIKWID 5 records on the other end, as LIKWID's
client would on /tmp/likwid-<pid>.
usage: service_handover.py match|mismatch|listener UID GID CPU REG
  match     drop to UID/GID, then make the pair: the service must take it (byte 0), serve a
            write and a read back, and restore the register when the client leaves without EXIT
  mismatch  make the pair as root, then drop to UID/GID: the handed socket's peer (root) is not
            the relay's uid, so the service must refuse (EACCES) and close it
  listener  hand over a listening socket: refused (ENOTSOCK)"""
import array
import os
import socket
import struct
import sys

SOCKET = "/run/likwid-access/socket"
HELLO = b"LKAS\x01\x02\x00\x00"
READ, WRITE = 0, 1


def record(kind, cpu, reg, data=0):
    return struct.pack("=IIQiii4x", cpu, reg, data, 0, kind, 3)


def ask(sock, kind, cpu, reg, data=0):
    sock.sendall(record(kind, cpu, reg, data))
    buf = b""
    while len(buf) < 32:
        chunk = sock.recv(32 - len(buf))
        if not chunk:
            raise SystemExit("FAIL: the service closed the LIKWID client's socket")
        buf += chunk
    cpu_, reg_, data_, dev, kind_, code = struct.unpack("=IIQiii4x", buf)
    return data_, code


def drop(uid, gid):
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def hand_over(fd):
    relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    relay.settimeout(10)
    relay.connect(SOCKET)
    relay.sendmsg([HELLO], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    answer = relay.recv(1)
    relay.close()
    return answer[0] if answer else None


def main():
    mode, uid, gid, cpu, reg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5], 0)
    if mode == "listener":
        drop(uid, gid)
        lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lst.bind("\0likwid-handover-test-%d" % os.getpid())
        lst.listen(1)
        got = hand_over(lst.fileno())
        if got != 88:
            raise SystemExit("FAIL: a listening socket was answered %r, want ENOTSOCK (88)" % got)
        print("listening socket refused with ENOTSOCK")
        return
    if mode == "match":
        drop(uid, gid)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if mode == "mismatch":
        drop(uid, gid)
    ours.settimeout(10)
    got = hand_over(theirs.fileno())
    theirs.close()
    if mode == "mismatch":
        if got != 13:
            raise SystemExit("FAIL: mismatching uid answered %r, want EACCES (13)" % got)
        if ours.recv(32) != b"":
            raise SystemExit("FAIL: the refused socket was not closed")
        print("mismatching peer uid refused with EACCES and the socket closed")
        return
    if got != 0:
        raise SystemExit("FAIL: hand-over answered %r, want 0" % got)
    data, code = ask(ours, WRITE, cpu, reg, 0x4242)
    if code != 0:
        raise SystemExit("FAIL: write over the handed socket answered code %d" % code)
    data, code = ask(ours, READ, cpu, reg)
    if code != 0 or data != 0x4242:
        raise SystemExit("FAIL: read back code %d data %#x, want 0 and 0x4242" % (code, data))
    # No EXIT: the service must restore the register when this client goes.
    ours.close()
    print("hand-over served a LIKWID client as uid %d: write and read back" % uid)


main()
