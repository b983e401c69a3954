#!/usr/bin/env python3
"""The attackers of t_flood.sh: each mode floods one node's daemon the way a
peer key (through sshd and `sessyncd --serve`) or a local client of the
socket (root, PHP's user) could, for SECONDS, then exits 0. The checks
(RSS, --status, an honest peer) are t_flood.sh's.

    flood.py inv-ssh  SECONDS COUNT FROM TO -- SSH-ARGV...
        a peer key: HELLO as FROM, then COUNT INV_REQ, never reading
    inv-sock SECONDS COUNT FROM TO SOCK
        the same straight on the socket (RELAY "" first, as a local client)
    big      SECONDS NCONN BYTES SOCK
        NCONN connections that send no RELAY nor HELLO, only the first BYTES
        of a frame whose header says 16 MiB
    idle     SECONDS NCONN SOCK
        NCONN connections that send nothing, reopened as the daemon closes
        them, as fast as it closes them
    fast     SECONDS FROM TO SOCK NAME READY
        a peer that sends FILE frames of NAME (each a newer version, with a
        valid hash, so each is applied) as fast as the socket takes them,
        and reads what comes back; READY is created when it starts sending
It prints one line of figures to stdout at the end.
"""
import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time

T_RELAY, T_HELLO, T_FILE, T_INV_REQ = 11, 1, 2, 15

_xx = ctypes.CDLL("libxxhash.so.0")
_xx.XXH3_64bits.restype = ctypes.c_uint64
_xx.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def frame(typ, seq, payload=b""):
    return struct.pack(">IBI", 5 + len(payload), typ, seq) + payload


def s8(b):
    return bytes([len(b)]) + b


def relay(frm=b""):
    return frame(T_RELAY, 0, s8(frm))


def hello(frm, to):
    return frame(T_HELLO, 0, struct.pack(">IHQ", 0x5353594E, 1, time.time_ns()) + s8(frm) + s8(to))


def inv_reqs(n):
    return b"".join(frame(T_INV_REQ, i + 1) for i in range(n))


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def hold(seconds, socks=()):
    time.sleep(seconds)
    for s in socks:
        s.close()


def inv_ssh(seconds, count, frm, to, argv):
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdin.write(hello(frm, to) + inv_reqs(count))
    p.stdin.flush()
    time.sleep(seconds)   # stdout is never read: the pipe, ssh and sshd fill up
    p.kill()
    p.wait()
    print(f"inv-ssh: {count} INV_REQ sent")


def inv_sock(seconds, count, frm, to, path):
    s = connect(path)
    s.sendall(relay() + hello(frm, to) + inv_reqs(count))
    hold(seconds, [s])
    print(f"inv-sock: {count} INV_REQ sent")


def big(seconds, nconn, nbytes, path):
    head = struct.pack(">IBI", 16 << 20, T_HELLO, 0)
    body = head + b"\0" * (nbytes - len(head))
    socks, sent, why = [], 0, set()
    for _ in range(nconn):
        s = connect(path)
        s.settimeout(5)
        try:
            s.sendall(body)
            sent += len(body)
        except OSError as e:
            why.add(e.strerror or str(e))   # refused and closed by the daemon
        socks.append(s)
    hold(seconds, socks)
    print(f"big: {nconn} connections, {sent} bytes sent" + (f" ({', '.join(sorted(why))})" if why else ""))


def idle(seconds, nconn, path):
    end = time.monotonic() + seconds
    socks, opened, refused = [], 0, 0
    while time.monotonic() < end:
        alive = []
        for s in socks:   # drop the ones the daemon closed
            try:
                s.setblocking(False)
                if s.recv(4096) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        socks = alive
        while len(socks) < nconn:
            try:
                socks.append(connect(path))
                opened += 1
            except OSError:
                refused += 1
                break
        time.sleep(0.01)
    for s in socks:
        s.close()
    print(f"idle: {opened} connections opened, {refused} connect() refused")


def fast(seconds, frm, to, path, name, ready):
    # Built before connecting, so the daemon meets one unbroken stream.
    head, frames, t0 = s8(name), [], time.time_ns()
    for i in range(200000):   # ~90 MB, every frame a newer version: every one is applied
        c = b"fast|i:%d;" % i + b"x" * 400
        frames.append(frame(T_FILE, i + 1, head + struct.pack(">QQI", t0 + i * 1000, _xx.XXH3_64bits(c, len(c)), len(c)) + c))
    data = b"".join(frames)
    del frames
    s = connect(path)
    s.sendall(relay() + hello(frm, to))
    got = [0]

    def drain():
        while True:
            try:
                b = s.recv(1 << 16)
            except OSError:
                return
            if not b:
                return
            got[0] += len(b)

    threading.Thread(target=drain, daemon=True).start()
    open(ready, "w").close()
    end, sent = time.monotonic() + seconds, 0
    view = memoryview(data)
    try:
        while sent < len(data) and time.monotonic() < end:
            sent += s.send(view[sent:sent + (1 << 20)])
    except OSError:
        pass
    s.close()
    print(f"fast: {sent} bytes of FILE frames sent, {got[0]} bytes of replies read")


def main(a):
    mode, seconds = a[0], float(a[1])
    if mode == "inv-ssh":
        inv_ssh(seconds, int(a[2]), a[3].encode(), a[4].encode(), a[6:])
    elif mode == "inv-sock":
        inv_sock(seconds, int(a[2]), a[3].encode(), a[4].encode(), a[5])
    elif mode == "big":
        big(seconds, int(a[2]), int(a[3]), a[4])
    elif mode == "idle":
        idle(seconds, int(a[2]), a[3])
    elif mode == "fast":
        fast(seconds, a[2].encode(), a[3].encode(), a[4], a[5].encode(), a[6])
    else:
        sys.exit(f"flood.py: unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
