"""Records what arrives at a datagram socket (our stand-in /dev/log) into a file.
usage: syslog_sink.py SOCKET OUTFILE READYFILE"""
import socket
import sys

path, out, ready = sys.argv[1:4]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
open(ready, "w").close()
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(sock.recv(65536) + b"\n")
