#!/usr/bin/env python3
"""A hostile peer on a daemon's unix socket (proto/PROTOCOL.md), for
t_unknown_flood.sh: it relays as configured peer FROM (a stolen key),
says HELLO, then floods DELETEs for random names and FILEs for new
names, reading every ACK. Prints one JSON object: ACK statuses per frame
type, and what it sent.

  hostile_peer.py SOCK FROM TO --deletes N --files N --file-size B
                  --file-hash HEX [--stamp-ns NS] [--file NAME:MTIME_NS:HASH:SIZE]

Content of every FILE is B bytes of "x" (--file-hash is its xxh3-64: the
test computes it with xxhsum, Python has no xxh3 here)."""
import argparse, json, os, socket, struct, sys, threading, time

T_HELLO, T_FILE, T_DELETE, T_ACK, T_RELAY = 1, 2, 5, 6, 11
STATUS = ["ok", "stale", "need-full", "busy", "retry", "reject"]


def frame(ftype, seq, payload):
    return struct.pack(">IBI", 5 + len(payload), ftype, seq) + payload


def s8(b):
    return struct.pack(">B", len(b)) + b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sock"); ap.add_argument("frm"); ap.add_argument("to")
    ap.add_argument("--deletes", type=int, default=0)
    ap.add_argument("--files", type=int, default=0)
    ap.add_argument("--file-size", type=int, default=64)
    ap.add_argument("--file-hash", default="0")
    ap.add_argument("--stamp-ns", type=int, default=0)
    ap.add_argument("--stamp-step", type=int, default=0, help="ns added to the stamp per DELETE")
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.sock)
    acks = {}
    kinds = {}   # seq -> "delete" or "file"
    expected = [0]
    got = [0]
    done = threading.Event()
    closed = [None]

    def reader():
        buf = b""
        while True:
            try:
                d = s.recv(1 << 16)
            except OSError as e:
                closed[0] = str(e); break
            if not d:
                closed[0] = "eof"; break
            buf += d
            while len(buf) >= 4:
                (ln,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + ln:
                    break
                ftype = buf[4]
                body = buf[9:4 + ln]
                buf = buf[4 + ln:]
                if ftype == T_ACK:
                    (aseq,) = struct.unpack(">I", body[:4])
                    st = body[4]
                    kind = kinds.get(aseq, "?")
                    k = "%s:%s" % (kind, STATUS[st] if st < len(STATUS) else st)
                    acks[k] = acks.get(k, 0) + 1
                    got[0] += 1

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    now = time.time_ns()
    stamp = a.stamp_ns or now
    seq = 1
    out = [frame(T_RELAY, 0, s8(a.frm.encode())),
           frame(T_HELLO, seq, struct.pack(">IHQ", 0x5353594E, 1, now) + s8(a.frm.encode()) + s8(a.to.encode()))]
    n = 0
    rnd = os.urandom
    for i in range(a.deletes):
        seq += 1
        name = b"sess_hd%08d" % i   # predictable: the test asks about sess_hd00000000 later
        out.append(frame(T_DELETE, seq, s8(name) + struct.pack(">BQQ", 1, stamp + i * a.stamp_step, 0)))
        kinds[seq] = "delete"
        n += 1
    content = b"x" * a.file_size
    h = int(a.file_hash, 16)
    for i in range(a.files):
        seq += 1
        name = b"sess_hf%08d" % i
        out.append(frame(T_FILE, seq, s8(name) + struct.pack(">QQ", now - 1000000000, h) +
                         struct.pack(">I", len(content)) + content))
        kinds[seq] = "file"
        n += 1
    for spec in a.file:
        nm, mt, hh, sz = spec.split(":")
        seq += 1
        c = b"x" * int(sz)
        out.append(frame(T_FILE, seq, s8(nm.encode()) + struct.pack(">QQ", int(mt), int(hh, 16)) +
                         struct.pack(">I", len(c)) + c))
        kinds[seq] = "file"
        n += 1
    expected[0] = n
    t0 = time.time()
    data = b"".join(out)
    try:
        s.sendall(data)
    except OSError as e:
        closed[0] = "send: " + str(e)
    done.set()
    end = time.time() + a.timeout
    while got[0] < n and closed[0] is None and time.time() < end:
        time.sleep(0.05)
    print(json.dumps({"sent": n, "answered": got[0], "acks": acks, "closed": closed[0],
                      "seconds": round(time.time() - t0, 2)}))


main()
