"""The cluster half of chaos_driver.py (tests/integration/t_chaos.sh): the processes the chaos
test starts, kills and cuts, and what it polls. lib.sh laid the nodes out ($T/nI, see
tests/integration/README.md); every process started here writes its PID where lib.sh's
teardown stops it by PID (nI/daemon.pid, nI/sshd/pid)."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/faketime/libfaketime.so.1")


def mono():
    return time.monotonic()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.examples = {}

    def inc(self, key, n=1, example=None):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n
            if example is not None:
                ex = self.examples.setdefault(key, [])
                if len(ex) < 8:
                    ex.append(example)

    def get(self, key):
        with self.lock:
            return self.c.get(key, 0)


class Cluster:
    """Nodes 1..a.nodes: their daemons, sshds, relays, authorized_keys, n(clock_node)'s clock."""

    def __init__(self, a):
        self.a = a
        self.T = a.T
        self.n = a.nodes
        self.t0 = mono()
        self.stop_watch = threading.Event()
        self.out = os.path.join(self.T, "chaos")
        os.makedirs(self.out, exist_ok=True)
        self.events = open(os.path.join(self.out, "events.txt"), "a", buffering=1)
        self.elock = threading.Lock()
        self.procs = {}                     # node -> Popen of its daemon
        self.incarnation = {i: 0 for i in self.nodes()}
        self.inc_start = {i: 0.0 for i in self.nodes()}
        self.we_killed = {}                 # node -> True while we expect it dead
        self.health = {i: "unreachable" for i in self.nodes()}
        self.polls = {i: [] for i in self.nodes()}   # (t, incarnation, {peer: settled})
        self.plock = threading.Lock()
        self.cut = set()                    # (frm, to): frm's key out of to's authorized_keys
        self.sshd_down = set()
        self.clock = "+0s"
        self.faketime_lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
        self.stats = Stats()

    # ------------------------------------------------------------ helpers

    def nodes(self):
        return range(1, self.n + 1)

    def nd(self, i, *p):
        return os.path.join(self.T, "n%d" % i, *p)

    def now(self):
        return mono() - self.t0

    def event(self, what):
        with self.elock:
            self.events.write("%9.3f %s\n" % (self.now(), what))

    def path(self, i, sid):
        return self.nd(i, "sessions", "sess_" + sid)

    def daemon_log_mark(self, i, what):
        with open(self.nd(i, "daemon.log"), "a") as f:
            f.write("=== it: %s chaos: %s\n" % (time.strftime("%H:%M:%S"), what))

    # ------------------------------------------------------------ processes

    def descendants(self, pid):
        kids = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
        out, q = [], [pid]
        while q:
            p = q.pop()
            for k in kids.get(p, []):
                out.append(k)
                q.append(k)
        return out

    def pid_alive(self, pid):
        """Alive and not a zombie (lib.sh's sshd is the shell's child: the shell reaps it)."""
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return False
        except ChildProcessError:
            pass
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
        except OSError:
            return False
        return st[st.rindex(")") + 2] != "Z"

    def cmdline(self, pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    def daemon_env(self, i):
        env = dict(os.environ)
        if i == self.a.clock_node and self.faketime_lib:
            # The daemon's wall clock only: CLOCK_MONOTONIC (its timers) and stat() stay true,
            # as the kernel keeps file times; the offset file can change while it runs.
            env.update(LD_PRELOAD=self.faketime_lib,
                       FAKETIME_TIMESTAMP_FILE=self.nd(i, "faketime.rc"),
                       FAKETIME_CACHE_DURATION="1", FAKETIME_DONT_FAKE_MONOTONIC="1",
                       NO_FAKE_STAT="1")
            env.pop("FAKETIME", None)
        return env

    def daemon_start(self, i, why):
        log = open(self.nd(i, "daemon.log"), "a")
        log.write("=== it: %s daemon_start n%d (chaos: %s, clock %s)\n" % (
            time.strftime("%H:%M:%S"), i, why, self.clock if i == self.a.clock_node else "+0s"))
        log.flush()
        p = subprocess.Popen([self.a.sessyncd, "-c", self.nd(i, "sessync.conf")],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             env=self.daemon_env(i))
        log.close()
        self.procs[i] = p
        self.incarnation[i] += 1
        self.inc_start[i] = self.now()
        self.we_killed.pop(i, None)
        with open(self.nd(i, "daemon.pid"), "w") as f:
            f.write("%d\n" % p.pid)
        self.event("start n%d (%s) pid %d" % (i, why, p.pid))

    def daemon_alive(self, i):
        p = self.procs.get(i)
        return p is not None and p.poll() is None

    def check_unexpected_exit(self, i):
        p = self.procs.get(i)
        if p is not None and p.poll() is not None and not self.we_killed.get(i):
            self.stats.inc("daemon_exits", example="n%d exit %s at %.1f s" % (i, p.returncode, self.now()))
            self.event("n%d daemon exited by itself: status %s" % (i, p.returncode))
            self.we_killed[i] = True
            return True
        return False

    def daemon_kill9(self, i):
        p = self.procs.get(i)
        if p is None:
            return
        self.check_unexpected_exit(i)
        self.we_killed[i] = True
        try:
            p.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        self.daemon_log_mark(i, "kill -9")
        self.event("kill -9 n%d" % i)

    def sshd_start(self, i):
        d = self.nd(i, "sshd")
        p = subprocess.Popen([self.a.sshd, "-D", "-f", os.path.join(d, "sshd_config"), "-E",
                              os.path.join(d, "log")], stdin=subprocess.DEVNULL)
        with open(os.path.join(d, "pid"), "w") as f:
            f.write("%d\n" % p.pid)
        port = int(open(self.nd(i, "port")).read())
        deadline = mono() + 10
        while mono() < deadline and p.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        self.sshd_down.discard(i)
        self.event("sshd n%d up" % i)

    def sshd_stop(self, i):
        try:
            pid = int(open(self.nd(i, "sshd", "pid")).read())
        except (OSError, ValueError):
            return
        if str(self.T) not in self.cmdline(pid):
            return
        victims = [pid] + self.descendants(pid)
        for v in victims:
            try:
                os.kill(v, signal.SIGKILL if v != pid else signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = mono() + 5
        while mono() < deadline and self.pid_alive(pid):
            time.sleep(0.02)
        self.sshd_down.add(i)
        self.event("sshd n%d down" % i)

    def kill_relays(self, frm, to):
        """SIGKILL the --serve relay that carries frm's pushes into to."""
        want = "%s --serve --from n%d" % (self.nd(to, "sessync.conf"), frm)
        n = 0
        for d in os.listdir("/proc"):
            if d.isdigit() and want in self.cmdline(int(d)):
                try:
                    os.kill(int(d), signal.SIGKILL)
                    n += 1
                except ProcessLookupError:
                    pass
        return n

    def akeys(self, to):
        return self.nd(to, "sshd", "authorized_keys")

    def link_cut(self, frm, to):
        with open(self.akeys(to)) as f:
            lines = f.readlines()
        keep = [ln for ln in lines if not ln.rstrip().endswith(" n%d" % frm)]
        tmp = self.akeys(to) + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(keep)
        os.replace(tmp, self.akeys(to))
        self.cut.add((frm, to))
        k = self.kill_relays(frm, to)
        self.event("cut n%d -> n%d (%d relay(s) killed)" % (frm, to, k))

    def link_heal(self, frm, to):
        with open(self.akeys(to)) as f:
            lines = f.readlines()
        with open(self.akeys(to) + ".orig") as f:
            mine = [ln for ln in f if ln.rstrip().endswith(" n%d" % frm)]
        tmp = self.akeys(to) + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines + mine)
        os.replace(tmp, self.akeys(to))
        self.cut.discard((frm, to))
        self.event("heal n%d -> n%d" % (frm, to))

    def set_clock(self, offset):
        tmp = self.nd(self.a.clock_node, "faketime.rc.tmp")
        with open(tmp, "w") as f:
            f.write(offset + "\n")
        os.replace(tmp, self.nd(self.a.clock_node, "faketime.rc"))
        self.clock = offset
        self.daemon_log_mark(self.a.clock_node, "clock step to %s" % offset)
        self.event("clock n%d %s" % (self.a.clock_node, offset))

    # ------------------------------------------------------------ what the daemons say

    def health_loop(self):
        while not self.stop_watch.is_set():
            for i in self.nodes():
                try:
                    port = int(open(self.nd(i, "health.port")).read())
                    with socket.create_connection(("127.0.0.1", port), 1) as s:
                        s.settimeout(1)
                        w = s.recv(64).decode(errors="replace").strip()
                    self.health[i] = w or "unreachable"
                except (OSError, ValueError):
                    self.health[i] = "unreachable"
            self.stop_watch.wait(0.2)

    def status_loop(self):
        while not self.stop_watch.is_set():
            for i in self.nodes():
                inc = self.incarnation[i]
                t = self.now()
                try:
                    r = subprocess.run([self.a.sessyncd, "-c", self.nd(i, "sessync.conf"), "--status",
                                        "--json"], capture_output=True, timeout=5)
                    st = json.loads(r.stdout) if r.returncode == 0 else None
                except (subprocess.TimeoutExpired, ValueError):
                    st = None
                if st is None:
                    continue
                settled = {}
                for p in st.get("peers", []):
                    settled[p["name"]] = bool(p.get("connected")) and p.get("pending") == 0
                with self.plock:
                    self.polls[i].append((t, inc, settled))
            self.stop_watch.wait(self.a.status_every)

    def promised(self, frm, to, t_ack, t_move):
        """A's daemon said twice, after the write and before the move, that B had it all."""
        ok = 0
        with self.plock:
            polls = list(self.polls[frm])
        for t, inc, settled in polls:
            if t_ack + 0.5 < t < t_move and settled.get("n%d" % to):
                ok += 1
                if ok >= 2:
                    return True
        return False

    def heal_all(self):
        for frm, to in list(self.cut):
            self.link_heal(frm, to)
        for i in list(self.sshd_down):
            self.sshd_start(i)
        for i in self.nodes():
            self.check_unexpected_exit(i)
            if not self.daemon_alive(i):
                self.daemon_start(i, "heal at the end")
