#!/usr/bin/env python3
"""The competitor in steady replication: inotifywait + rsync over one
multiplexed ssh connection per peer (ControlMaster), the way lsyncd's
default.rsync works: changed names are collected while a transfer runs, and
as soon as one ends the next batch goes to every peer at once, each as one
`rsync -a --files-from=-`.

usage: comp_sync.py SRC STATUS_FILE SSH_CMD:DST [SSH_CMD:DST...]
(SSH_CMD is given to rsync -e; it must name the ControlPath of a running
master.) Writes "batches names" to STATUS_FILE after every batch. Runs until
SIGTERM.
"""
import os
import signal
import subprocess
import sys
import threading

src, status = sys.argv[1], sys.argv[2]
peers = [a.rsplit(":", 1) for a in sys.argv[3:]]
pending = set()
cond = threading.Condition()
overflow = [False]

inw = subprocess.Popen(["inotifywait", "-m", "-q", "-e", "close_write", "-e", "moved_to",
                        "--format", "%e %f", src], stdout=subprocess.PIPE, text=True)


def reader():
    for line in inw.stdout:
        ev, _, name = line.rstrip("\n").partition(" ")
        with cond:
            if "Q_OVERFLOW" in ev:
                overflow[0] = True
            elif name.startswith("sess_"):
                pending.add(name)
            cond.notify()


threading.Thread(target=reader, daemon=True).start()
signal.signal(signal.SIGTERM, lambda *_: (inw.terminate(), os._exit(0)))
batches = names = 0
while True:
    with cond:
        while not pending and not overflow[0]:
            cond.wait()
        batch, full = sorted(pending), overflow[0]
        pending.clear()
        overflow[0] = False
    procs = []
    for ssh, dst in peers:
        if full:   # events were lost: the whole directory, as lsyncd does
            argv = ["rsync", "-a", "-e", ssh, src + "/", "127.0.0.1:" + dst + "/"]
        else:
            argv = ["rsync", "-a", "--files-from=-", "-e", ssh, src + "/", "127.0.0.1:" + dst + "/"]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(p)
    for p in procs:
        try:
            if not full:
                p.stdin.write("".join(n + "\n" for n in batch).encode())
            p.stdin.close()
        except BrokenPipeError:
            pass
    for p in procs:
        p.wait()
    batches += 1
    names += len(batch)
    with open(status + ".new", "w") as f:
        f.write("%d %d\n" % (batches, names))
    os.replace(status + ".new", status)
