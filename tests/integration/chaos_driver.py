#!/usr/bin/env python3
"""Chaos driver for tests/integration/t_chaos.sh (docs/DESIGN.md "Tests": the chaos test).

One process plays every part around a cluster that lib.sh laid out (cluster_create N with
IT_HEALTH=1, sshds started, no daemon yet):

  users     sticky users doing PHP requests on their home node, exactly as PHP's files handler
            does them (ext/session/mod_files.c): open(O_CREAT|O_RDWR|O_NOFOLLOW), flock(LOCK_EX)
            for the whole request, read; then a write (ftruncate(0) only when the new data is
            shorter, pwrite at 0), a lazy_write touch (utime(path, NULL)) or a logout
            (session_destroy: close, then unlink with no lock held); close. Some users are
            served by real `php -n` instead. Every payload checks itself: PHP's own
            serialisation of u, n, pad, then c = sha256 of the encoding before it.
  the LB    HAProxy's rules with sticky cookies and sessync's agent-check (docs/DESIGN.md
            "Readiness"): a user moves off a node whose agent says "down", moves at random
            (rebalancing) only to a node whose agent says "up ready" or cannot be reached (a
            dead daemon: HAProxy then goes by its regular check; --move-to-unreachable 0 leaves
            those out), and stays on "up drain".
  readers   per node, PHP-style readers under flock(LOCK_SH) that check every payload (torn
            reads), and a directory scan that watches for logged-out sessions coming back.
  chaos     kill -9 of daemons (restarted after a random pause), link cuts (a peer's key
            taken out of a node's authorized_keys and its relay killed; a node's sshd stopped;
            a relay killed alone), and clock steps of one daemon (libfaketime reading an
            offset file: NTP-like steps of the daemon's wall clock while it runs; monotonic
            time and file times stay true).

At the end the chaos stops, everything is healed, and the driver waits (bounded) for every
node to converge, then counts, from its ledger of every acknowledged write and logout:

  lost         (a) a user's request on the node it stayed on read something other than its
                   own last acknowledged write (a peer's older version, or a delete, replaced
                   it);
               (b) a stale handover that sessync had promised away: the user moved A -> B and
                   B lacked the last write acknowledged on A, although A's daemon had said,
                   in two status polls after that write and before the move, that B was
                   connected with nothing pending;
               (c) after convergence, a live session whose bytes on some node are not its last
                   acknowledged write.
               A handover that finds B stale for any other reason (A's daemon killed before it
               pushed, a cut link, the write younger than the replication lag) is asynchronous
               replication working as designed: counted as "stale handovers (excused)".
  resurrected  a session whose logout was acknowledged that is back on a node which had held it
               and had then been seen without it in a scan that began after the logout (on the
               node of the logout: back after the unlink), or present anywhere once converged.
               A node that never held it may get the last version before the logout late, from
               a peer that has not heard of the logout yet: that is the delete not delivered
               yet, and the end of the run checks that it is delivered.
  torn         a read under LOCK_SH or LOCK_EX (or real PHP's session_start) of a non-empty
               file whose payload does not check. Empty files are PHP's own state between
               open(O_CREAT) and the first write, and are counted apart.

The processes (daemons, sshds, relays, keys, the clock) are chaos_cluster.py's.

Exit 0 only if lost = resurrected = torn = 0, no daemon exited on its own, and the cluster
converged within the bound. A summary goes to stdout and, as JSON, to --summary.
"""
import argparse
import errno
import fcntl
import hashlib
import heapq
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

from chaos_cluster import Cluster, mono

PAD_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PAYLOAD_RE = re.compile(rb'u\|s:(\d+):"([A-Za-z0-9]*)";n\|i:(\d+);pad\|s:(\d+):"([A-Za-z0-9]*)";'
                        rb'c\|s:16:"([0-9a-f]{16})";\Z')


def encode(uid, n, pad):
    """PHP's session_encode of ['u' => uid, 'n' => n, 'pad' => pad], then 'c'."""
    pre = b'u|s:%d:"%s";n|i:%d;pad|s:%d:"%s";' % (len(uid), uid, n, len(pad), pad)
    return pre + b'c|s:16:"%s";' % hashlib.sha256(pre).hexdigest()[:16].encode()


def check_payload(data):
    """None if data is a whole payload, else why not."""
    m = PAYLOAD_RE.match(data)
    if not m:
        return "does not parse"
    if int(m.group(1)) != len(m.group(2)) or int(m.group(4)) != len(m.group(5)):
        return "a length does not match"
    pre = data[:data.rindex(b'c|s:16:"')]
    if hashlib.sha256(pre).hexdigest()[:16].encode() != m.group(6):
        return "checksum does not match"
    return None


_TAGS = {}


def tag(sid):
    """The tag sessyncd's logs use for sess_SID (docs/DESIGN.md "Session ids in logs")."""
    if sid not in _TAGS:
        try:
            out = subprocess.run(["xxhsum", "-H3"], input=("sess_" + sid).encode(), capture_output=True,
                                 timeout=5).stdout.decode()
            m = re.search(r"[0-9a-f]{16}", out)
            _TAGS[sid] = "#" + m.group(0)[:8] if m else "#?"
        except (OSError, subprocess.TimeoutExpired):
            _TAGS[sid] = "#?"
    return _TAGS[sid]


def payload_n(data):
    m = PAYLOAD_RE.match(data)
    return int(m.group(3)) if m else None


class User:
    def __init__(self, idx, home, php):
        self.idx = idx
        self.uid = b"u%04d" % idx
        self.gen = 0
        self.sid = None
        self.home = home
        self.php = php
        self.moved_from = None     # set until the first request on the new home
        self.last = None           # bytes of the last acknowledged write of self.sid
        self.last_t = 0.0          # monotonic time of that ack
        self.last_node = None      # node it was acknowledged on
        self.seq = 0
        self.pad = b""
        self.next_at = 0.0

    def label(self):
        return "%s/g%d" % (self.uid.decode(), self.gen)


class Chaos(Cluster):
    def __init__(self, a):
        Cluster.__init__(self, a)
        self.rnd = random.Random(a.seed)
        self.stop_load = threading.Event()
        self.stop_chaos = threading.Event()
        self.users = []
        self.destroyed = {}                 # sid -> (t_done, node, label)
        self.dlock = threading.Lock()
        self.pending_absent = {i: set() for i in self.nodes()}
        self.absent_seen = {i: set() for i in self.nodes()}
        self.ever_seen = {i: set() for i in self.nodes()}
        self.resurrected = set()
        self.listing = {i: [] for i in self.nodes()}
        self.php_mods_extra = None

    # ------------------------------------------------------------ watchers

    def scan_loop(self, i):
        d = self.nd(i, "sessions")
        while not self.stop_watch.is_set():
            t = self.now()
            try:
                names = set(x[5:] for x in os.listdir(d) if x.startswith("sess_"))
            except OSError:
                names = set()
            self.listing[i] = list(names)
            with self.dlock:
                self.ever_seen[i] |= names
                for sid in list(self.pending_absent[i]):
                    # Gone from a node that had held it: from now on it must stay gone. A node
                    # that never held it may still get the last version before the logout,
                    # late, from a peer that has not heard of the logout yet: that is the
                    # delete not delivered yet, which the end of the run checks.
                    if self.destroyed[sid][0] < t and sid not in names and sid in self.ever_seen[i]:
                        self.pending_absent[i].discard(sid)
                        self.absent_seen[i].add(sid)
                back = names & self.absent_seen[i]
                for sid in back:
                    # Only a scan that began after the logout (and, on a peer, after a scan that
                    # saw the file gone): a listing taken before the unlink proves nothing.
                    if self.destroyed[sid][0] < t and (sid, i) not in self.resurrected:
                        self.resurrected.add((sid, i))
                        self.stats.inc("resurrected", example="%s %s on n%d at %.1f s (logout on n%d at %.1f s)" % (
                            self.destroyed[sid][2], tag(sid), i, t, self.destroyed[sid][1], self.destroyed[sid][0]))
                        self.event("RESURRECTED %s on n%d" % (self.destroyed[sid][2], i))
            self.stop_watch.wait(0.1)

    def read_loop(self, i):
        """PHP-style readers on node i: flock(LOCK_SH) and check the payload."""
        rnd = random.Random(self.a.seed * 31 + i)
        while not self.stop_watch.is_set():
            names = self.listing[i]
            if not names:
                self.stop_watch.wait(0.05)
                continue
            for _ in range(10):
                sid = rnd.choice(names)
                try:
                    fd = os.open(self.path(i, sid), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    if not self.flock(fd, fcntl.LOCK_SH, "reader n%d" % i):
                        continue
                    data = self.read_all(fd)
                    self.stats.inc("reads")
                    self.judge_read(i, sid, data, "LOCK_SH reader", fd)
                finally:
                    os.close(fd)
            self.stop_watch.wait(10 / self.a.reads)

    # ------------------------------------------------------------ the PHP requests

    def flock(self, fd, how, who):
        """flock as PHP does (blocking), bounded: a lock held for 10 s is a finding."""
        deadline = mono() + 10
        while True:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    raise
            if mono() > deadline:
                self.stats.inc("lock_timeouts", example="%s at %.1f s" % (who, self.now()))
                return False
            time.sleep(0.001)

    @staticmethod
    def read_all(fd):
        size = os.fstat(fd).st_size
        chunks, off = [], 0
        while off < size:
            b = os.pread(fd, size - off, off)
            if not b:
                break
            chunks.append(b)
            off += len(b)
        return b"".join(chunks)

    def judge_read(self, i, sid, data, who, fd=None):
        if not data:
            age = (time.time_ns() - os.fstat(fd).st_mtime_ns) / 1e6 if fd is not None else -1
            self.stats.inc("empty_reads", example="%s on n%d at %.1f s, mtime %.1f ms old" % (
                who, i, self.now(), age) if age > 100 else None)
            return "empty"
        why = check_payload(data)
        if why is None:
            return "ok"
        mt = os.fstat(fd).st_mtime_ns if fd is not None else -1
        k = self.stats.get("torn")
        with open(os.path.join(self.out, "torn-%d.bin" % k), "wb") as f:
            f.write(data)
        self.stats.inc("torn", example="%s on n%d at %.1f s: %s, %d bytes, mtime_ns %d (torn-%d.bin)" % (
            who, i, self.now(), why, len(data), mt, k))
        self.event("TORN %s n%d %s" % (who, i, why))
        return "torn"

    def new_pad(self, u, rnd):
        r = rnd.random()
        if not u.pad or r < 0.1:
            size = rnd.randint(2000, 30000) if rnd.random() < 0.1 else rnd.randint(20, 2000)
            return bytes(rnd.choice(PAD_CHARS) for _ in range(size))
        pad = bytearray(u.pad)
        for _ in range(rnd.randint(1, 4)):
            pad[rnd.randrange(len(pad))] = rnd.choice(PAD_CHARS)
        if r < 0.3:
            pad = pad[:max(1, len(pad) - rnd.randint(1, 200))]    # shorter: PHP truncates
        elif r < 0.5:
            pad += bytes(rnd.choice(PAD_CHARS) for _ in range(rnd.randint(1, 200)))
        return bytes(pad)

    def in_rotation(self, i):
        return self.health[i] == "up ready" or (self.health[i] == "unreachable" and self.a.move_to_unreachable)

    def pick_home(self, u, rnd):
        h = self.health[u.home]
        move = h == "down" or (h != "up drain" and rnd.random() < self.a.move_p)
        if not move:
            return
        choices = [i for i in self.nodes() if i != u.home and self.in_rotation(i)]
        if not choices:
            return
        to = rnd.choice(choices)
        if u.moved_from is None:
            u.moved_from = u.home
        u.home = to
        self.stats.inc("moves_forced" if h == "down" else "moves")

    def judge_first_read(self, u, node, data, t):
        """What the user's request reads, against the user's own last acknowledged write."""
        if u.last is None or data == u.last:
            if u.moved_from is not None and u.last is not None:
                self.stats.inc("handovers_fresh")
            return
        got = payload_n(data)
        what = "%s %s on n%d read n=%s, last ack n=%s (on n%d, %.2f s before)" % (
            u.label(), tag(u.sid), node, got, payload_n(u.last) if u.last else "(empty)", u.last_node, t - u.last_t)
        if u.moved_from is None:
            self.stats.inc("lost_home", example=what)
            self.event("LOST (home) " + what)
        elif u.last_node != node and self.promised(u.last_node, node, u.last_t, t):
            self.stats.inc("lost_handover", example=what + ", although n%d had said n%d was settled" % (
                u.last_node, node))
            self.event("LOST (handover) " + what)
        else:
            self.stats.inc("handovers_stale_excused")
            self.event("stale handover (excused) " + what)

    def request_py(self, u, rnd):
        node = u.home
        if u.sid is None:
            u.gen += 1
            u.sid = "chaos%s%dx%08x" % (u.uid.decode(), u.gen, rnd.getrandbits(32))
            u.last = None
            u.seq = 0
        path = self.path(node, u.sid)
        r = rnd.random()
        may_logout = u.last is not None and (self.a.logout_on_arrival or u.moved_from is None)
        action = "destroy" if r < self.a.logout_p and may_logout else \
            "touch" if r < self.a.logout_p + self.a.touch_p and u.last is not None else "write"
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if not self.flock(fd, fcntl.LOCK_EX, "%s on n%d" % (u.label(), node)):
                return
            st_size = os.fstat(fd).st_size
            data = self.read_all(fd)
            t = self.now()
            if u.last is None and not data:
                pass                            # a new session: PHP just created it
            elif self.judge_read(node, u.sid, data, "LOCK_EX request", fd) != "torn":
                self.judge_first_read(u, node, data, t)
            u.moved_from = None
            if action == "write":
                u.seq += 1
                u.pad = self.new_pad(u, rnd)
                new = encode(u.uid, u.seq, u.pad)
                if len(new) < st_size:
                    os.ftruncate(fd, 0)
                view, off = memoryview(new), 0
                while off < len(new):
                    off += os.pwrite(fd, view[off:], off)
            elif action == "touch":
                os.utime(path)                  # PS_UPDATE_TIMESTAMP_FUNC: utime(path, NULL)
                # lazy_write keeps what it read, with a newer mtime: after a stale handover
                # that is the stale copy (or PHP's new empty file), and it is now the newest.
                u.last = data
        finally:
            os.close(fd)                        # PHP's ps_files_close: the lock goes with it
        if action == "destroy":
            try:
                os.unlink(path)                 # PS_DESTROY_FUNC: after the close, no lock
            except FileNotFoundError:
                pass
            self.logged_out(u, node)
        else:
            if action == "write":
                u.last = new
            u.last_t = self.now()
            u.last_node = node
            self.stats.inc(action + "s")

    def logged_out(self, u, node):
        t = self.now()
        self.event("logout %s on n%d" % (u.label(), node))
        with self.dlock:
            self.destroyed[u.sid] = (t, node, u.label())
            self.absent_seen[node].add(u.sid)
            for j in self.nodes():
                if j != node:
                    self.pending_absent[j].add(u.sid)
        self.stats.inc("logouts")
        u.sid = None
        u.last = None

    def php_argv(self, node):
        if self.php_mods_extra is None:
            mods = subprocess.run(["php", "-n", "-m"], capture_output=True, text=True).stdout
            self.php_mods_extra = [] if re.search(r"(?im)^session$", mods) else ["-d", "extension=session"]
        return ["php", "-n"] + self.php_mods_extra + [
            "-d", "session.save_handler=files", "-d", "session.save_path=" + self.nd(node, "sessions"),
            "-d", "session.use_strict_mode=0", "-d", "session.use_cookies=0",
            "-d", "session.use_only_cookies=0", "-d", "session.use_trans_sid=0",
            "-d", "session.cache_limiter=", "-d", "session.lazy_write=1",
            "-d", "session.gc_probability=0", "-d", "display_errors=stderr", "-d", "error_reporting=-1",
            "-r", PHP_CODE, "--"]

    def request_php(self, u, rnd):
        """One real PHP request (php -n, PHP's own files handler)."""
        node = u.home
        if u.sid is None:
            u.gen += 1
            u.sid = "chaos%s%dx%08x" % (u.uid.decode(), u.gen, rnd.getrandbits(32))
            u.last = None
            u.seq = 0
        may_logout = u.last is not None and (self.a.logout_on_arrival or u.moved_from is None)
        action = "destroy" if rnd.random() < self.a.logout_p * 2 and may_logout else "write"
        seq, pad = u.seq + 1, self.new_pad(u, rnd)
        new = encode(u.uid, seq, pad)
        t = self.now()
        r = subprocess.run(self.php_argv(node) + [u.sid, action, u.uid.decode(), str(seq), pad.decode()],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            self.stats.inc("php_failures", example="%s on n%d: exit %d %s" % (
                u.label(), node, r.returncode, r.stderr[-200:].decode(errors="replace")))
            if r.returncode == 3:
                self.stats.inc("torn", example="php session_start failed for %s on n%d" % (u.label(), node))
            return
        seen = json.loads(r.stdout)
        if not seen["good"]:
            self.stats.inc("torn", example="php read a payload that does not check: %s on n%d" % (u.label(), node))
        elif seen["raw"]:
            self.judge_first_read(u, node, seen["raw"].encode("latin-1"), t)
        else:
            self.judge_first_read(u, node, b"", t)
        u.moved_from = None
        self.stats.inc("php_requests")
        if action == "destroy":
            self.logged_out(u, node)
            return
        u.seq, u.pad, u.last = seq, pad, new
        u.last_t = self.now()
        u.last_node = node
        self.stats.inc("writes")

    def writer_loop(self, k, nwriters):
        rnd = random.Random(self.a.seed * 1000 + k)
        mine = [u for u in self.users if not u.php and u.idx % nwriters == k]
        rate = self.a.rate / nwriters
        start, i = mono(), 0
        while not self.stop_load.is_set():
            delay = start + i / rate - mono()
            if delay > 0:
                time.sleep(delay)
            i += 1
            now = mono()
            u = rnd.choice(mine)
            if u.next_at > now:
                continue
            u.next_at = now + self.a.think
            self.pick_home(u, rnd)
            try:
                self.request_py(u, rnd)
            except OSError as e:
                self.stats.inc("request_errors", example="%s: %s" % (u.label(), e))

    def php_loop(self):
        rnd = random.Random(self.a.seed * 7 + 1)
        mine = [u for u in self.users if u.php]
        if not mine or self.a.php_rate <= 0:
            return
        start, i = mono(), 0
        while not self.stop_load.is_set():
            delay = start + i / self.a.php_rate - mono()
            if delay > 0:
                time.sleep(delay)
            i += 1
            u = rnd.choice(mine)
            self.pick_home(u, rnd)
            try:
                self.request_php(u, rnd)
            except (OSError, subprocess.TimeoutExpired, ValueError) as e:
                self.stats.inc("php_failures", example="%s: %s" % (u.label(), e))

    # ------------------------------------------------------------ chaos

    def chaos_loop(self):
        rnd = self.rnd
        restores = []      # heap of (t, seq, fn, args)
        seq = 0
        steps = [s for s in self.a.clock_steps.split(",") if s]
        kinds = [("kill9", self.a.w_kill), ("cut", self.a.w_cut), ("sshd", self.a.w_sshd),
                 ("blip", self.a.w_blip), ("clock", self.a.w_clock if steps and self.faketime_lib else 0)]
        total = sum(w for _, w in kinds)
        next_fault = self.now() + rnd.uniform(0.2, 2 * self.a.fault_every)
        while not self.stop_chaos.is_set():
            t = self.now()
            for i in self.nodes():
                if self.check_unexpected_exit(i):
                    seq += 1
                    heapq.heappush(restores, (t + 1, seq, "restart", i))
            while restores and restores[0][0] <= t:
                _, _, what, arg = heapq.heappop(restores)
                if what == "restart" and not self.daemon_alive(arg):
                    self.daemon_start(arg, "restart after kill")
                elif what == "heal":
                    self.link_heal(*arg)
                elif what == "sshd":
                    self.sshd_start(arg)
            if t >= next_fault:
                next_fault = t + rnd.uniform(0.2, 2 * self.a.fault_every)
                r, kind = rnd.uniform(0, total), None
                for kind, w in kinds:
                    r -= w
                    if r <= 0:
                        break
                alive = [i for i in self.nodes() if self.daemon_alive(i)]
                seq += 1
                if kind == "kill9" and len(alive) > self.n - self.a.max_dead:
                    i = rnd.choice(alive)
                    self.daemon_kill9(i)
                    self.stats.inc("kills")
                    heapq.heappush(restores, (t + rnd.uniform(0.2, self.a.max_pause), seq, "restart", i))
                elif kind == "cut":
                    frm, to = rnd.sample(list(self.nodes()), 2)
                    if (frm, to) not in self.cut:
                        self.link_cut(frm, to)
                        self.stats.inc("cuts")
                        heapq.heappush(restores, (t + rnd.uniform(0.5, self.a.max_cut), seq, "heal", (frm, to)))
                elif kind == "sshd":
                    i = rnd.choice(list(self.nodes()))
                    if i not in self.sshd_down:
                        self.sshd_stop(i)
                        self.stats.inc("sshd_stops")
                        heapq.heappush(restores, (t + rnd.uniform(0.5, self.a.max_cut), seq, "sshd", i))
                elif kind == "blip":
                    frm, to = rnd.sample(list(self.nodes()), 2)
                    self.event("blip n%d -> n%d: %d relay(s) killed" % (frm, to, self.kill_relays(frm, to)))
                    self.stats.inc("blips")
                elif kind == "clock":
                    choices = [s for s in steps if s != self.clock] or steps
                    self.set_clock(rnd.choice(choices))
                    self.stats.inc("clock_steps")
                else:
                    next_fault = t     # that fault was not possible now: draw another
            self.stop_chaos.wait(0.05)

    # ------------------------------------------------------------ the end

    def expected(self):
        """sid -> bytes every node must hold once converged."""
        return {u.sid: u.last for u in self.users if u.sid is not None and u.last is not None}

    def tree(self, i):
        d, out = self.nd(i, "sessions"), {}
        for name in os.listdir(d):
            if not name.startswith("sess_"):
                continue
            try:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                    mt = os.fstat(f.fileno()).st_mtime_ns
            except FileNotFoundError:
                continue
            out[name[5:]] = (data, mt)
        return out

    def converged(self, want):
        trees = [self.tree(i) for i in self.nodes()]
        if any(t != trees[0] for t in trees[1:]):
            return False, trees
        if any(s not in trees[0] or trees[0][s][0] != want[s] for s in want):
            return False, trees
        if any(s in self.destroyed for s in trees[0]):
            return False, trees
        return True, trees

    def run(self):
        a = self.a
        self.users = [User(k, 1 + k % self.n, a.php_rate > 0 and k % a.php_every == 0) for k in range(a.users)]
        if self.faketime_lib:
            self.set_clock(a.clock_start)
        for i in self.nodes():
            self.daemon_start(i, "first start")
        watchers = [threading.Thread(target=self.health_loop, daemon=True),
                    threading.Thread(target=self.status_loop, daemon=True)]
        watchers += [threading.Thread(target=self.scan_loop, args=(i,), daemon=True) for i in self.nodes()]
        watchers += [threading.Thread(target=self.read_loop, args=(i,), daemon=True) for i in self.nodes()]
        for w in watchers:
            w.start()
        deadline = mono() + 60
        while mono() < deadline and not all(self.health[i] == "up ready" for i in self.nodes()):
            time.sleep(0.1)
        if not all(self.health[i] == "up ready" for i in self.nodes()):
            print("# chaos: the cluster did not become ready: %s" % self.health, flush=True)
            return 1
        self.event("cluster ready")
        t_start = self.now()
        load = [threading.Thread(target=self.writer_loop, args=(k, a.writers)) for k in range(a.writers)]
        load.append(threading.Thread(target=self.php_loop))
        chaos = threading.Thread(target=self.chaos_loop)
        for th in load + [chaos]:
            th.start()
        time.sleep(a.seconds)
        self.stop_chaos.set()
        chaos.join()
        self.stop_load.set()
        for th in load:
            th.join()
        t_stop = self.now()
        self.event("chaos and load stopped")
        self.heal_all()
        t_heal = self.now()
        want = self.expected()
        ok, trees = False, None
        deadline = mono() + a.settle
        while mono() < deadline:
            for i in self.nodes():
                if self.check_unexpected_exit(i):
                    self.daemon_start(i, "restart after it exited")
            ok, trees = self.converged(want)
            if ok:
                break
            time.sleep(0.5)
        t_conv = self.now()
        self.event("converged" if ok else "NOT converged")
        time.sleep(1.0)                  # one more scan on every node after convergence
        self.stop_watch.set()
        for w in watchers:
            w.join(timeout=10)
        return self.report(ok, trees, want, t_start, t_stop, t_heal, t_conv)

    def report(self, ok, trees, want, t_start, t_stop, t_heal, t_conv):
        s = self.stats
        lost_final = []
        label = {u.sid: u.label() for u in self.users}
        for sid, data in want.items():
            for i, tr in zip(self.nodes(), trees):
                if sid not in tr or tr[sid][0] != data:
                    got = payload_n(tr[sid][0]) if sid in tr else None
                    lost_final.append("%s %s on n%d: %s, last ack n=%s" % (
                        label[sid], tag(sid), i, "missing" if sid not in tr else "n=%s" % got, payload_n(data) if data else "(empty)"))
        res_final, res_final_sids = [], set()
        for sid, (t, node, label) in self.destroyed.items():
            for i, tr in zip(self.nodes(), trees):
                if sid in tr:
                    res_final_sids.add(sid)
                    res_final.append("%s %s on n%d (logout on n%d at %.1f s)" % (label, tag(sid), i, node, t))
        unknown = sorted(set().union(*[set(tr) for tr in trees]) - set(want) - set(self.destroyed))
        mismatch = [i for i, tr in zip(self.nodes(), trees) if tr != trees[0]]
        lost = s.get("lost_home") + s.get("lost_handover") + len(lost_final)
        resurrected = len(set(sid for sid, _ in self.resurrected) | res_final_sids)
        torn = s.get("torn")
        summary = {
            "duration_s": round(t_stop - t_start, 1), "settle_s": round(t_conv - t_heal, 1),
            "converged": ok, "lost": lost, "lost_home": s.get("lost_home"),
            "lost_handover": s.get("lost_handover"), "lost_final": len(lost_final),
            "resurrected": resurrected, "resurrected_seen": len(self.resurrected),
            "resurrected_final": len(res_final), "torn": torn,
            "writes": s.get("writes"), "touches": s.get("touchs"), "logouts": s.get("logouts"),
            "php_requests": s.get("php_requests"), "php_failures": s.get("php_failures"),
            "reads": s.get("reads"), "empty_reads": s.get("empty_reads"),
            "moves": s.get("moves"), "moves_forced": s.get("moves_forced"),
            "handovers_fresh": s.get("handovers_fresh"),
            "handovers_stale_excused": s.get("handovers_stale_excused"),
            "kills": s.get("kills"), "cuts": s.get("cuts"), "sshd_stops": s.get("sshd_stops"),
            "blips": s.get("blips"), "clock_steps": s.get("clock_steps"),
            "daemon_exits": s.get("daemon_exits"), "lock_timeouts": s.get("lock_timeouts"),
            "request_errors": s.get("request_errors"),
            "live_sessions": len(want), "unknown_files": len(unknown),
            "nodes_differing": mismatch, "examples": s.examples,
            "lost_final_examples": lost_final[:8], "resurrected_final_examples": res_final[:8],
        }
        with open(self.a.summary, "w") as f:
            json.dump(summary, f, indent=1)
        rate = (summary["writes"] + summary["touches"] + summary["logouts"]) / max(1e-9, t_stop - t_start)
        print("# chaos: %.1f s of chaos, %d nodes, %.0f requests/s: %d writes, %d touches, %d logouts "
              "(%d by real php), %d locked reads" % (
                  summary["duration_s"], self.n, rate, summary["writes"], summary["touches"],
                  summary["logouts"], summary["php_requests"], summary["reads"]))
        print("# chaos: faults: %d kill -9, %d link cuts, %d sshd stops, %d relay kills, %d clock steps "
              "(n%d, offsets %s)" % (summary["kills"], summary["cuts"], summary["sshd_stops"], summary["blips"],
                                     summary["clock_steps"], self.a.clock_node, self.a.clock_steps))
        print("# chaos: users: %d moves (+%d off a node that said down), handovers: %d fresh, %d stale "
              "(excused: asynchronous replication after a fault)" % (
                  summary["moves"], summary["moves_forced"], summary["handovers_fresh"],
                  summary["handovers_stale_excused"]))
        print("# chaos: %s in %.1f s after healing (%d live sessions)" % (
            "converged" if ok else "NOT converged", summary["settle_s"], len(want)))
        print("# chaos: lost %d (home %d, handover %d, final %d), resurrected %d, torn %d, "
              "daemon exits %d, lock timeouts %d, empty reads %d" % (
                  lost, summary["lost_home"], summary["lost_handover"], len(lost_final), resurrected, torn,
                  summary["daemon_exits"], summary["lock_timeouts"], summary["empty_reads"]))
        for key, ex in sorted(s.examples.items()):
            for e in ex:
                print("#   %s: %s" % (key, e))
        for e in lost_final[:8]:
            print("#   lost_final: %s" % e)
        for e in res_final[:8]:
            print("#   resurrected_final: %s" % e)
        if mismatch:
            print("#   nodes whose tree differs from n1's: %s; unknown files: %d" % (mismatch, len(unknown)))
        bad = lost or resurrected or torn or not ok or summary["daemon_exits"] or summary["lock_timeouts"] \
            or summary["request_errors"]
        return 1 if bad else 0


# A real PHP request: session_start() (PHP's own open, flock LOCK_EX, read), a check of what it
# read, then either the new payload (session_write_close: PHP's truncate-if-shorter and pwrite)
# or session_destroy() (close, then unlink). Prints what it read, raw, for the driver's ledger.
PHP_CODE = r'''
session_id($argv[1]);
if (!@session_start()) { echo json_encode(["err" => "start"]); exit(3); }
$good = true;
if ($_SESSION) {
    $c = $_SESSION["c"] ?? "";
    $all = $_SESSION; unset($_SESSION["c"]);
    $good = substr(hash("sha256", session_encode()), 0, 16) === $c;
    $_SESSION = $all;
}
$raw = session_encode();
if ($argv[2] === "destroy") {
    if (!session_destroy()) exit(4);
} else {
    $_SESSION = [];
    $_SESSION["u"] = $argv[3];
    $_SESSION["n"] = (int)$argv[4];
    $_SESSION["pad"] = $argv[5];
    $_SESSION["c"] = substr(hash("sha256", session_encode()), 0, 16);
    if (!session_write_close()) exit(5);
}
echo json_encode(["good" => $good, "raw" => $raw === false ? "" : $raw]);
'''


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--T", required=True)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--sessyncd", required=True)
    p.add_argument("--sshd", default="/usr/sbin/sshd")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--settle", type=float, default=90, help="bound on convergence after healing")
    p.add_argument("--rate", type=float, default=250, help="python PHP-style requests per second, total")
    p.add_argument("--writers", type=int, default=2)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--think", type=float, default=0.02, help="least time between a user's requests")
    p.add_argument("--php-rate", type=float, default=3, help="real php requests per second")
    p.add_argument("--php-every", type=int, default=10, help="every Nth user is served by real php")
    p.add_argument("--logout-p", type=float, default=0.06)
    p.add_argument("--touch-p", type=float, default=0.12)
    p.add_argument("--move-p", type=float, default=0.03)
    p.add_argument("--logout-on-arrival", type=int, default=1,
                   help="0: a user's first request after a move is never a logout")
    p.add_argument("--move-to-unreachable", type=int, default=1,
                   help="0: users move only to nodes whose agent says up ready, not to a dead daemon's")
    p.add_argument("--fault-every", type=float, default=2.0, help="mean seconds between faults")
    p.add_argument("--max-dead", type=int, default=1, help="daemons dead at once, at most")
    p.add_argument("--max-pause", type=float, default=4.0, help="longest pause before a restart")
    p.add_argument("--max-cut", type=float, default=5.0, help="longest link cut or sshd stop")
    p.add_argument("--w-kill", type=float, default=3)
    p.add_argument("--w-cut", type=float, default=2)
    p.add_argument("--w-sshd", type=float, default=1)
    p.add_argument("--w-blip", type=float, default=1)
    p.add_argument("--w-clock", type=float, default=1.5)
    p.add_argument("--clock-node", type=int, default=3)
    p.add_argument("--clock-start", default="+0s")
    p.add_argument("--clock-steps", default="+0s,+20s,+5s", help="offsets the clock node steps between")
    p.add_argument("--reads", type=float, default=100, help="locked reads per second per node")
    p.add_argument("--status-every", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--summary", required=True)
    a = p.parse_args()
    c = Chaos(a)
    for i in c.nodes():
        ak = c.akeys(i)
        if not os.path.exists(ak + ".orig"):
            with open(ak) as f, open(ak + ".orig", "w") as g:
                g.write(f.read())
    rc = c.run()
    sys.exit(rc)


if __name__ == "__main__":
    main()
