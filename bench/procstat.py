#!/usr/bin/env python3
"""CPU, memory, process count and wakeups of groups of process trees over a window.

usage: procstat.py WINDOW_S GROUP=PID[,PID...] ...
       procstat.py life GROUP=PID[,PID...] ...

"life" reports, instead of a window, everything the processes alive now have
used since they started (cpu= then is CPU seconds, wakeups_s= a count).

Each GROUP is the given PIDs and all their descendants (sshd's per-connection
children call setsid(), so the parent chain, not the process group, finds
them). Prints one line per group:

  GROUP cpu=CORES rss_kb=N pss_kb=N procs=N wakeups_s=N

cpu is the CPU time used during the window / window length (1.0 = one core
busy), from schedstat's first field (the scheduler's exact run time), not
utime+stime: those are sampled at the timer tick, and a process that wakes
on a timer just after each tick and sleeps before the next (bench_mesh at
1,000 writes/s) is charged almost nothing. A process that appeared in the
window counts with all its time.
rss_kb sums VmRSS at the end (shared pages counted in every process), pss_kb
sums Pss from smaps_rollup (shared pages split between their users: what the
group really costs). wakeups_s is the number of times the group's threads
were scheduled in (schedstat's third field) per second: what an idle daemon
should keep near zero.
"""
import os
import sys
import time

def table():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(roots, kids):
    out, q = [], [r for r in roots if os.path.exists(f"/proc/{r}")]
    while q:
        p = q.pop()
        out.append(p)
        q.extend(kids.get(p, []))
    return out


def sched(pid):
    """(run time in ns, times scheduled in) summed over PID's threads, or None."""
    ns = n = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                v = f.read().split()
            ns += int(v[0])
            n += int(v[2])
    except (OSError, IndexError, ValueError):
        return None
    return ns, n


def mem(pid, key, path):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def snap(groups):
    kids = table()
    out = {}
    for name, roots in groups:
        procs = {}
        for p in tree(roots, kids):
            t = sched(p)
            if t is not None:
                procs[p] = t
        out[name] = procs
    return out


def main():
    life = sys.argv[1] == "life"
    window = 0.0 if life else float(sys.argv[1])
    groups = []
    for a in sys.argv[2:]:
        name, pids = a.split("=", 1)
        groups.append((name, [int(p) for p in pids.split(",") if p]))
    t0 = time.monotonic()
    a = {name: {} for name, _ in groups} if life else snap(groups)
    time.sleep(window)
    b = snap(groups)
    dt = 1.0 if life else time.monotonic() - t0
    for name, _ in groups:
        used = wk = 0
        for p, (t, w) in b[name].items():
            t0_, w0 = a[name].get(p, (0, 0))
            used += t - t0_
            wk += w - w0
        rss = sum(mem(p, "VmRSS:", "status") for p in b[name])
        pss = sum(mem(p, "Pss:", "smaps_rollup") for p in b[name])
        print(f"{name} cpu={used / 1e9 / dt:.3f} rss_kb={rss} pss_kb={pss} "
              f"procs={len(b[name])} wakeups_s={wk / dt:.1f}")


if __name__ == "__main__":
    main()
