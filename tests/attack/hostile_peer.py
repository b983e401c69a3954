#!/usr/bin/env python3
"""A hostile peer on the far side of our libssh2 connection: run by the
peer's sshd as the forced command instead of `sessyncd --serve`, it speaks
the receiver's side of proto/PROTOCOL.md on stdin/stdout.

    hostile_peer.py inv  FROM TO   answer HELLO, then INV frames of new
                                   names forever, never INV_END
    hostile_peer.py pong FROM TO   answer HELLO and an empty inventory, then
                                   PONG frames as fast as the channel takes
                                   them (never reading our pushes)
    hostile_peer.py stderr FROM TO answer HELLO and an empty inventory, then
                                   lines on stderr forever
FROM is the hostile node's name (the peer), TO ours.
"""
import os
import struct
import sys
import time

T_HELLO, T_INV, T_INV_END, T_PONG = 1, 7, 8, 10


def frame(typ, seq, payload=b""):
    return struct.pack(">IBI", 5 + len(payload), typ, seq) + payload


def s8(b):
    return bytes([len(b)]) + b


def hello(frm, to):
    return frame(T_HELLO, 0, struct.pack(">IHQ", 0x5353594E, 1, time.time_ns()) + s8(frm) + s8(to))


def read_frame(f):
    head = f.read(4)
    if len(head) < 4:
        sys.exit(0)
    n = struct.unpack(">I", head)[0]
    return f.read(n)


def inv_frames(now_ns):
    k = int.from_bytes(os.urandom(6), "big") << 40   # new names at every connection
    while True:
        ents = []
        for _ in range(4096):
            name = b"sess_%026x" % k
            k += 1
            # kind 1 (destroy): wanted whatever its age; ver = now
            ents.append(s8(name) + b"\x01" + struct.pack(">QQ", now_ns, 0))
        yield frame(T_INV, 0, struct.pack(">I", 4096) + b"".join(ents))


def main():
    mode, frm, to = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
    fin = os.fdopen(0, "rb", buffering=0)
    out = os.fdopen(1, "wb", buffering=0)
    read_frame(fin)   # the pusher's HELLO
    out.write(hello(frm, to))
    if mode == "inv":
        for f in inv_frames(time.time_ns()):
            out.write(f)
    elif mode == "stderr":
        out.write(frame(T_INV_END, 0, struct.pack(">I", 0)))
        err = os.fdopen(2, "wb", buffering=0)
        line = b"x" * 300 + b"\n"
        while True:
            err.write(line * 1000)
    elif mode == "pong":
        out.write(frame(T_INV_END, 0, struct.pack(">I", 0)))
        pong = frame(T_PONG, 0, struct.pack(">QQ", 0, time.time_ns()))
        blob = pong * 4096
        while True:
            out.write(blob)


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, ConnectionResetError):
        pass
