#!/usr/bin/env python3
"""A pusher that never reads the SSH channel's stderr (t_attack_standin.sh).
It runs `sessyncd -c CONF --serve --from FROM` the way sshd runs the forced
command, asking for a drain (SSH_ORIGINAL_COMMAND), so that with no daemon
running a stand-in applies its frames under the state lock. It says HELLO,
sends COUNT FILEs whose names are not session names (each logged as a
warning on stderr, the pusher's channel), reads stdout (the ACKs) but never
stderr, and holds the channel open for SECONDS. Prints one JSON line.

  standin_stall.py SESSYNCD CONF FROM TO COUNT SECONDS"""
import json, os, struct, subprocess, sys, threading, time

T_HELLO, T_FILE = 1, 2


def frame(t, seq, p):
    return struct.pack(">IBI", 5 + len(p), t, seq) + p


def s8(b):
    return bytes([len(b)]) + b


def main(a):
    exe, conf, frm, to, count, secs = a[0], a[1], a[2].encode(), a[3].encode(), int(a[4]), float(a[5])
    env = dict(os.environ, SSH_ORIGINAL_COMMAND="sessyncd --serve --drain")
    p = subprocess.Popen([exe, "-c", conf, "--serve", "--from", a[2]], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    got = [0]

    def reader():
        while True:
            b = p.stdout.read1(1 << 16)
            if not b:
                return
            got[0] += len(b)

    threading.Thread(target=reader, daemon=True).start()
    now = time.time_ns()
    out = [frame(T_HELLO, 1, struct.pack(">IHQ", 0x5353594E, 1, now) + s8(frm) + s8(to))]
    for i in range(count):
        out.append(frame(T_FILE, i + 2, s8(b"notasession%06d" % i) + struct.pack(">QQI", now, 0, 1) + b"x"))
    try:
        p.stdin.write(b"".join(out))
        p.stdin.flush()
    except OSError:
        pass
    time.sleep(secs)
    p.kill()
    p.wait()
    print(json.dumps({"stdout_bytes": got[0], "frames": count}))


main(sys.argv[1:])
