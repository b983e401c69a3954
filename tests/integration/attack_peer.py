#!/usr/bin/env python3
"""Attacks on a daemon's socket by a holder of one peer's key (relays as
FROM, says HELLO to TO), for the t_attack_*.sh tests. Reads every ACK and
prints one JSON object: ACK statuses per frame type, what it sent.

  attack_peer.py SOCK FROM TO churn N
      N times: a FILE for a new name sess_hc%08d (8 bytes, 1 s old), then
      a DELETE (destroy, now) of that same name. Each FILE creates a file,
      each DELETE removes it: the disk stays empty, and each pair leaves a
      tombstone of a name the node HAD (so no budget, no heap)
  attack_peer.py SOCK FROM TO mark N AHEAD_S
      N DELETEs (destroy) for names never seen, each stamped AHEAD_S
      seconds ahead of now (plus i ns): pushes the watermark ahead
"""
import ctypes, json, socket, struct, sys, threading, time

T_HELLO, T_FILE, T_DELETE, T_ACK, T_RELAY = 1, 2, 5, 6, 11
STATUS = ["ok", "stale", "need-full", "busy", "retry", "reject"]
_xx = ctypes.CDLL("libxxhash.so.0")
_xx.XXH3_64bits.restype = ctypes.c_uint64
_xx.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def frame(t, seq, p):
    return struct.pack(">IBI", 5 + len(p), t, seq) + p


def s8(b):
    return bytes([len(b)]) + b


def main(a):
    path, frm, to, mode = a[0], a[1].encode(), a[2].encode(), a[3]
    n = int(a[4])
    now = time.time_ns()
    out = [frame(T_RELAY, 0, s8(frm)),
           frame(T_HELLO, 1, struct.pack(">IHQ", 0x5353594E, 1, now) + s8(frm) + s8(to))]
    kinds, seq = {}, 1
    if mode == "churn":
        c = b"x" * 8
        h = _xx.XXH3_64bits(c, len(c))
        for i in range(n):
            name = b"sess_hc%08d" % i
            seq += 1
            out.append(frame(T_FILE, seq, s8(name) + struct.pack(">QQI", now - 10**9 + i, h, len(c)) + c))
            kinds[seq] = "file"
            seq += 1
            out.append(frame(T_DELETE, seq, s8(name) + struct.pack(">BQQ", 1, now + i + 1, 0)))
            kinds[seq] = "delete"
    elif mode == "mark":
        ahead = int(float(a[5]) * 1e9)
        for i in range(n):
            seq += 1
            out.append(frame(T_DELETE, seq, s8(b"sess_hm%08d" % i) + struct.pack(">BQQ", 1, now + ahead + i, 0)))
            kinds[seq] = "delete"
    elif mode == "grow":
        small, big = b"x" * 8, b"y" * int(a[5])
        hs, hb = _xx.XXH3_64bits(small, len(small)), _xx.XXH3_64bits(big, len(big))
        for i in range(n):
            name = b"sess_hg%05d" % i
            seq += 1
            out.append(frame(T_FILE, seq, s8(name) + struct.pack(">QQI", now - 2 * 10**9, hs, len(small)) + small))
            kinds[seq] = "file"
        for i in range(n):
            name = b"sess_hg%05d" % i
            seq += 1
            out.append(frame(T_FILE, seq, s8(name) + struct.pack(">QQI", now - 10**9, hb, len(big)) + big))
            kinds[seq] = "grow"
    elif mode == "badnames":
        for i in range(n):
            seq += 1
            out.append(frame(T_FILE, seq, s8(b"notasession%06d" % i) + struct.pack(">QQI", now, 0, 1) + b"x"))
            kinds[seq] = "file"
    else:
        sys.exit("attack_peer.py: unknown mode " + mode)
    total = seq - 1
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    acks, got, closed = {}, [0], [None]

    def reader():
        buf = b""
        while True:
            try:
                d = s.recv(1 << 16)
            except OSError as e:
                closed[0] = str(e); return
            if not d:
                closed[0] = "eof"; return
            buf += d
            while len(buf) >= 9:
                (ln,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + ln:
                    break
                t, body, buf = buf[4], buf[9:4 + ln], buf[4 + ln:]
                if t == T_ACK:
                    (q,) = struct.unpack(">I", body[:4])
                    k = "%s:%s" % (kinds.get(q, "?"), STATUS[body[4]] if body[4] < 6 else body[4])
                    acks[k] = acks.get(k, 0) + 1
                    got[0] += 1

    threading.Thread(target=reader, daemon=True).start()
    t0 = time.time()
    try:
        s.sendall(b"".join(out))
    except OSError as e:
        closed[0] = "send: " + str(e)
    end = time.time() + 180
    while got[0] < total and closed[0] is None and time.time() < end:
        time.sleep(0.05)
    print(json.dumps({"sent": total, "answered": got[0], "acks": acks, "closed": closed[0],
                      "seconds": round(time.time() - t0, 2)}))


main(sys.argv[1:])
