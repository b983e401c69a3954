#!/usr/bin/env python3
"""The users of t_ready.sh: a write load on n2 and n3, and probes through
HAProxy pinned to n1. See t_ready.sh for what is measured and why.

    ready_load.py T LB_PORT RATE USERS

Background (the main thread, all the time): RATE requests per second, each
by a logged-in user picked at random among those whose last request is at
least MIN_GAP old, on the node the user is homed on (n2 or n3), written as
PHP's files handler does (the session file is read and rewritten under
flock(LOCK_EX), in PHP's serialization, `user|s:..;counter|i:N;`, which
tests/app/index.php reads): 84 % increment the counter, 8 % log out
(unlink, as session_destroy), 8 % log a new user in. The driver keeps the
ground truth: per user the newest counter written and whether logged out.
A read that finds a counter below the truth, or a live user's file
missing, is a lost update.

Control, by files in T/ctl (written by t_ready.sh, answered here):
  ready      (from here) USERS users are logged in; the load waits for go
  down-P     n1 went down now: the changes from here on are what n1 misses
  freeze-P   pick phase P's probe users, the background leaves them alone;
             answered by frozen-P (the counts)
  probe-P    the probe users start clicking: GET /?action=page through
             HAProxy with the cookies PHPSESSID=<their id> and SRV=n1, each
             user every PROBE_GAP s until a request is answered by n1 (the
             first after HAProxy sends traffic to n1 again), which is judged:
             stale (counter older than the truth when it was sent), seen
             logged in after a logout (resurrected), or ok. Requests answered
             elsewhere (n1 out of rotation) are ordinary requests there and
             update the truth. Answered by result-P.json
  n1login    log N1_USERS of n1's own users in on n1 through HAProxy (cookie
             SRV=n1) and keep them clicking there, GET /?action=page every
             N1_GAP s, with the cookies HAProxy and PHP set (SRV changes if
             HAProxy moves them); answered by n1in once every login is on n2
             and n3 too. Every answer is judged against the user's own truth
             (the counter it last saw): stale (older counter, or not logged
             in), resurrected (a logged-out user logged in), by the window it
             was sent in (before, dead, restart, ready: the files below)
  n1dead     n1's daemon is dead: N1_OUT of them log out on n1 (their next
             click is GET /?action=logout; they click again only after
             n1started); answered by n1out once every logout is done and
             every other n1 user has written on n1 since n1dead
  n1restart  n1's daemon is about to start: counts how many of those changes
             the peers lack (n1only_* in n1.json: made with no daemon),
             answered by n1counted
  n1started  n1's daemon has started: the logged-out users click again
  n1ready    n1's daemon is ready
  stop       finish: truth.json (every user) and stats.json (n1.json for n1's
             users), then exit
"""
import fcntl
import heapq
import http.client
import json
import os
import random
import re
import sys
import threading
import time

T, LB, RATE, USERS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
CTL = os.path.join(T, "ctl")
DIRS = {i: os.path.join(T, "n%d" % i, "sessions") for i in (1, 2, 3)}
MIN_GAP = 0.5        # a user's requests are at least this far apart (think time)
PROBE_GAP = 0.5      # a probing user clicks again after this (think time, too)
PROBE_LIVE = int(os.environ.get("PROBE_LIVE", "40"))
PROBE_OUT = int(os.environ.get("PROBE_OUT", "20"))
PROBE_THREADS = 6
PROBE_DEADLINE = 20.0
N1_USERS = int(os.environ.get("N1_USERS", "30"))
N1_OUT = int(os.environ.get("N1_OUT", "8"))
N1_GAP = 0.4         # n1's own users click this often
N1_THREADS = 4
rnd = random.Random(int(os.environ.get("SEED", "12")))
ID_CHARS = "abcdefghijklmnopqrstuv0123456789"   # PHP's default (sid_bits_per_character 5)
COUNTER = re.compile(rb'counter\|i:(\d+);')
BODY = re.compile(r"node=(n\d+) (?:user=(\S+) counter=(\d+)|(not-logged-in))")
N1_BODY = re.compile(r"node=(n\d+) (?:user=(\S+) counter=(\d+)|(not-logged-in)|logged-in user=(\S+)|logged-out user=(\S*))")
lock = threading.Lock()   # the users' table, between the background and the probes


def now_ms():
    return time.time_ns() // 1_000_000


def log(msg):
    print("# load: " + msg, file=sys.stderr, flush=True)


class User:
    def __init__(self, n, home):
        self.sid = "".join(rnd.choice(ID_CHARS) for _ in range(26))
        self.name = "u%05d" % n
        self.home = home
        self.counter = 0
        self.out = False          # logged out (by the driver)
        self.out_at = 0.0
        self.lost = False         # the session vanished or was emptied: counted, then left alone
        self.frozen = False       # a probe user of the running phase
        self.last = 0.0           # monotonic time of the last request
        self.wrote_at = 0.0

    def path(self, node=None):
        return os.path.join(DIRS[node or self.home], "sess_" + self.sid)

    def content(self, counter):
        return b'user|s:%d:"%s";counter|i:%d;' % (len(self.name), self.name.encode(), counter)


users, live = [], []
stats = {"ops": 0, "updates": 0, "logouts": 0, "logins": 0, "lost": 0, "unexpected": 0}
lost_notes = []


def php_write_new(u):
    fd = os.open(u.path(), os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, u.content(0), 0)
    finally:
        os.close(fd)


def php_update(u):
    """One request of u on its home node: read, counter + 1, rewrite, all
    under LOCK_EX, as PHP's files handler does."""
    try:
        fd = os.open(u.path(), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        lost(u, "file missing on n%d" % u.home)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = os.pread(fd, 65536, 0)
        m = COUNTER.search(data)
        if not m or u.name.encode() not in data:
            lost(u, "n%d holds %r" % (u.home, data[:60]))
            return
        c = int(m.group(1))
        if c < u.counter:
            stats["lost"] += 1
            lost_notes.append("%s: n%d holds counter %d, %d was written" % (u.name, u.home, c, u.counter))
        elif c > u.counter:
            stats["unexpected"] += 1
            lost_notes.append("%s: n%d holds counter %d, only %d was written" % (u.name, u.home, c, u.counter))
        data = u.content(c + 1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        u.counter = c + 1
        u.wrote_at = time.monotonic()
    finally:
        os.close(fd)


def lost(u, why):
    stats["lost"] += 1
    lost_notes.append("%s: %s" % (u.name, why))
    u.lost = True
    if u in live:
        live.remove(u)


def login(home=None):
    u = User(len(users), home or rnd.choice((2, 3)))
    php_write_new(u)
    u.last = u.wrote_at = time.monotonic()
    users.append(u)
    live.append(u)
    return u


def background_op():
    t = time.monotonic()
    r = rnd.random()
    if r < 0.08:
        login()
        stats["logins"] += 1
        return
    for _ in range(30):
        u = rnd.choice(live)
        if not u.frozen and t - u.last >= MIN_GAP:
            break
    else:
        return
    u.last = t
    if r < 0.16:
        try:
            os.unlink(u.path())
        except FileNotFoundError:
            lost(u, "file missing on n%d at logout" % u.home)
            return
        u.out, u.out_at = True, t
        live.remove(u)
        stats["logouts"] += 1
    else:
        php_update(u)
        stats["updates"] += 1


# ---------------------------------------------------------------- probes

def probe_request(conn_box, u):
    """GET /?action=page as u, pinned to n1. Returns (node, user, counter or
    None for not-logged-in, sent_ms, recv_ms) or None on a transport error."""
    sent = now_ms()
    for attempt in range(2):
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", LB, timeout=5)
            conn = conn_box[0]
            conn.request("GET", "/?action=page", headers={"Cookie": "PHPSESSID=%s; SRV=n1" % u.sid})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn_box[0] = None
            break
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            if attempt:
                return None
    m = BODY.search(body)
    if not m:
        return ("?", None, "bad:%d:%s" % (resp.status, body.strip()[:60]), sent, now_ms())
    node, name, counter, _ = m.groups()
    return (node, name, int(counter) if counter else None, sent, now_ms())


class Phase:
    def __init__(self, name):
        self.name = name
        self.t_down = None
        self.users = []
        self.heap = []
        self.res = {"phase": name, "live": 0, "out": 0, "ok": 0, "stale": 0, "resurrected": 0,
                    "lost": 0, "unexpected": 0, "elsewhere": 0, "elsewhere_stale": 0,
                    "elsewhere_resurrected": 0, "errors": 0, "timeouts": 0,
                    "first_n1_sent_ms": None, "last_n1_sent_ms": None, "probe_start_ms": None,
                    "missed_updates": 0, "missed_logouts": 0, "notes": []}
        self.done = threading.Event()

    def freeze(self):
        t = time.monotonic()
        since = self.t_down if self.t_down is not None else t - 2.0
        with lock:
            cands = [u for u in live if not u.frozen and u.wrote_at >= since]
            outs = [u for u in users if u.out and u.out_at >= since and not u.frozen]
            self.res["missed_updates"] = len(cands)
            self.res["missed_logouts"] = len(outs)
            pick = rnd.sample(cands, min(PROBE_LIVE, len(cands))) + rnd.sample(outs, min(PROBE_OUT, len(outs)))
            for u in pick:
                u.frozen = True
            self.users = pick
        self.res["live"] = sum(1 for u in pick if not u.out)
        self.res["out"] = sum(1 for u in pick if u.out)

    def start(self):
        self.res["probe_start_ms"] = now_ms()
        t = time.monotonic()
        self.heap = [(t + i * PROBE_GAP / max(1, len(self.users)), i, u) for i, u in enumerate(self.users)]
        heapq.heapify(self.heap)
        self.pending = len(self.users)
        self.deadline = t + PROBE_DEADLINE
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(PROBE_THREADS)]
        for th in self.threads:
            th.start()

    def note(self, msg):
        if len(self.res["notes"]) < 20:
            self.res["notes"].append(msg)

    def worker(self):
        conn_box = [None]
        while True:
            with lock:
                if self.pending == 0 or time.monotonic() > self.deadline:
                    break
                if not self.heap:
                    item = None
                else:
                    item = heapq.heappop(self.heap)
            if item is None:
                time.sleep(0.01)
                continue
            due, i, u = item
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            r = probe_request(conn_box, u)
            with lock:
                if r is None or r[0] == "?":
                    self.res["errors"] += 1
                    if r:
                        self.note("%s: %s" % (u.name, r[2]))
                    heapq.heappush(self.heap, (time.monotonic() + PROBE_GAP, i, u))
                    continue
                node, name, counter, sent, recv = r
                self.judge(u, node, name, counter, sent)
                if node == "n1":
                    self.pending -= 1
                    u.frozen = False
                    u.last = time.monotonic()
                else:
                    heapq.heappush(self.heap, (time.monotonic() + PROBE_GAP, i, u))
        with lock:
            if self.pending == 0 or time.monotonic() > self.deadline:
                self.res["timeouts"] = self.pending
                for _, _, u in self.heap:
                    u.frozen = False
                self.heap = []
                self.done.set()

    def judge(self, u, node, name, counter, sent):
        """u's request sent at `sent` was answered by node: compare with the
        truth as it was when it was sent (u is frozen: nobody else writes u)."""
        first = node == "n1"
        pre = "" if first else "elsewhere_"
        if not first:
            self.res["elsewhere"] += 1
        else:
            if self.res["first_n1_sent_ms"] is None or sent < self.res["first_n1_sent_ms"]:
                self.res["first_n1_sent_ms"] = sent
            self.res["last_n1_sent_ms"] = max(sent, self.res["last_n1_sent_ms"] or 0)
        if u.out:
            if counter is not None:
                self.res[pre + "resurrected"] += 1
                self.note("%s logged out, seen logged in on %s (counter %d)" % (u.name, node, counter))
            elif first:
                self.res["ok"] += 1
            return
        if counter is None:
            # Logged in, yet the node has no session for u: it served from
            # an empty or missing copy (and PHP saved an empty one).
            self.res[pre + "stale"] += 1
            self.note("%s (counter %d) not logged in on %s" % (u.name, u.counter, node))
            lost(u, "not logged in on %s" % node)
            return
        seen = counter - 1
        if seen < u.counter:
            self.res[pre + "stale"] += 1
            self.note("%s: %s saw counter %d, %d was written before the request" % (u.name, node, seen, u.counter))
        elif seen > u.counter:
            self.res["unexpected"] += 1
            self.note("%s: %s saw counter %d, only %d was written" % (u.name, node, seen, u.counter))
        elif first:
            self.res["ok"] += 1
        u.counter = counter
        u.wrote_at = time.monotonic()


# ---------------------------------------------------------------- n1's own users

def ctl(name):
    return os.path.exists(os.path.join(CTL, name))


def ctl_write(name, obj=None):
    tmp = os.path.join(CTL, name + ".tmp")
    with open(tmp, "w") as out:
        if obj is not None:
            json.dump(obj, out)
    os.replace(tmp, os.path.join(CTL, name))


def http_get(conn_box, path, cookies):
    """GET path through HAProxy with cookies (a dict). Returns (status, body,
    the Set-Cookie name=value pairs) or None on a transport error."""
    hdr = "; ".join("%s=%s" % kv for kv in cookies.items())
    for attempt in range(2):
        try:
            if conn_box[0] is None:
                conn_box[0] = http.client.HTTPConnection("127.0.0.1", LB, timeout=5)
            conn = conn_box[0]
            conn.request("GET", path, headers={"Cookie": hdr} if hdr else {})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            set_cookies = [v.split(";", 1)[0] for k, v in resp.getheaders() if k.lower() == "set-cookie"]
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn_box[0] = None
            return resp.status, body, [c.partition("=")[::2] for c in set_cookies]
        except (OSError, http.client.HTTPException):
            if conn_box[0] is not None:
                conn_box[0].close()
            conn_box[0] = None
            if attempt:
                return None
    return None


WINDOWS = ("before", "dead", "restart", "ready")


class N1User:
    """One of n1's own users: a browser with a cookie jar, clicking on n1."""
    def __init__(self, n):
        self.name = "w%04d" % n
        self.sid = None
        self.cookies = {"SRV": "n1"}
        self.counter = 0
        self.out = False
        self.lost = False
        self.uncertain = False    # a request got no answer: it may have counted
        self.logout_due = False   # picked at n1dead: the next click logs out
        self.wrote_dead = False   # wrote on n1 after n1dead (before n1restart)
        self.first_after_restart = None


class N1Users:
    def __init__(self):
        self.users = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = []
        self.heap = []
        self.res = {"users": 0, "out": 0, "logins_elsewhere": 0, "errors": 0, "notes": [],
                    "n1only_live": None, "n1only_out": None,
                    "first_after_restart": {"n1": 0, "elsewhere": 0, "ok": 0, "bad": 0, "missing": 0}}
        for w in WINDOWS:
            self.res[w] = {"requests": 0, "n1": 0, "elsewhere": 0, "stale": 0, "resurrected": 0,
                           "unexpected": 0, "logouts": 0}
        self.answered_in = False
        self.answered_out = False
        self.picked_out = False
        self.counted_restart = False

    def note(self, msg):
        if len(self.res["notes"]) < 20:
            self.res["notes"].append(msg)

    def window(self):
        for w, f in (("ready", "n1ready"), ("restart", "n1started"), ("dead", "n1dead")):
            if ctl(f):
                return w
        return "before"

    def login_all(self):
        conn = [None]
        for k in range(N1_USERS):
            u = N1User(k)
            r = http_get(conn, "/?action=login&user=" + u.name, dict(u.cookies))
            if r is None:
                r = http_get(conn, "/?action=login&user=" + u.name, dict(u.cookies))
            if r is None:
                self.res["errors"] += 1
                self.note("%s: no answer to the login" % u.name)
                continue
            status, body, sc = r
            m = N1_BODY.search(body)
            for k2, v in sc:
                if k2 == "PHPSESSID":
                    u.sid = v
                elif k2 == "SRV":
                    u.cookies["SRV"] = v
            if not m or m.group(5) != u.name or not u.sid:
                self.res["errors"] += 1
                self.note("%s: login answered %r" % (u.name, body.strip()[:60]))
                continue
            if m.group(1) != "n1":
                self.res["logins_elsewhere"] += 1
            u.cookies["PHPSESSID"] = u.sid
            self.users.append(u)
        self.res["users"] = len(self.users)
        t = time.monotonic()
        self.heap = [(t + i * N1_GAP / max(1, len(self.users)), i, u) for i, u in enumerate(self.users)]
        heapq.heapify(self.heap)
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(N1_THREADS)]
        for th in self.threads:
            th.start()

    def on_peers(self, u):
        """u's session as n2 and n3 hold it: (counter or None, logged in) each."""
        out = []
        for i in (2, 3):
            try:
                b = open(os.path.join(DIRS[i], "sess_" + u.sid), "rb").read()
            except FileNotFoundError:
                b = b""
            m = COUNTER.search(b)
            out.append((int(m.group(1)) if m else None, b"user|" in b))
        return out

    def housekeeping(self):
        """From the main loop, every few ms: answer the control files."""
        if not self.answered_in and self.users:
            with self.lock:
                if all(all(li for _, li in self.on_peers(u)) for u in self.users):
                    self.answered_in = True
                    ctl_write("n1in")
        if ctl("n1dead") and not self.picked_out:
            with self.lock:
                self.picked_out = True
                for u in rnd.sample(self.users, min(N1_OUT, len(self.users))):
                    u.logout_due = True
                self.res["out"] = sum(1 for u in self.users if u.logout_due)
        if self.picked_out and not self.answered_out:
            with self.lock:
                if all(u.out if u.logout_due else (u.wrote_dead or u.lost) for u in self.users):
                    self.answered_out = True
                    ctl_write("n1out")
        if ctl("n1restart") and not self.counted_restart:
            with self.lock:
                self.counted_restart = True
                # What the peers lack: n1's daemon was dead, so nothing the
                # users did since n1dead can be there.
                live = out = 0
                for u in self.users:
                    peers = self.on_peers(u)
                    if u.out and any(li for _, li in peers):
                        out += 1
                    elif not u.out and u.wrote_dead and all(c is None or c < u.counter for c, _ in peers):
                        live += 1
                self.res["n1only_live"], self.res["n1only_out"] = live, out
                ctl_write("n1counted")

    def worker(self):
        conn_box = [None]
        while not self.stop.is_set():
            with self.lock:
                item = heapq.heappop(self.heap) if self.heap else None
            if item is None:
                time.sleep(0.01)
                continue
            due, i, u = item
            d = due - time.monotonic()
            if d > 0 and self.stop.wait(d):
                break
            if u.out and not ctl("n1started"):
                # logged out while the daemon was dead: back once it runs, so
                # it finds their files missing (a logout), not recreated
                with self.lock:
                    heapq.heappush(self.heap, (time.monotonic() + 0.05, i, u))
                continue
            w = self.window()
            action = "logout" if u.logout_due and not u.out else "page"
            r = http_get(conn_box, "/?action=" + action, dict(u.cookies))
            with self.lock:
                if r is None:
                    self.res["errors"] += 1
                    u.uncertain = True
                else:
                    self.judge(u, w, action, r)
                if not u.lost:
                    heapq.heappush(self.heap, (time.monotonic() + N1_GAP, i, u))

    def judge(self, u, w, action, r):
        status, body, sc = r
        for k, v in sc:
            if k in ("SRV", "PHPSESSID"):
                u.cookies[k] = v
        m = N1_BODY.search(body)
        res = self.res[w]
        if not m:
            self.res["errors"] += 1
            self.note("%s: %s answered %d %r" % (u.name, action, status, body.strip()[:60]))
            return
        node = m.group(1)
        res["requests"] += 1
        res["n1" if node == "n1" else "elsewhere"] += 1
        first = w in ("restart", "ready") and u.first_after_restart is None
        bad = False
        if action == "logout":
            res["logouts"] += 1
            if m.group(6) is None:
                self.res["errors"] += 1
                self.note("%s: logout answered %r" % (u.name, body.strip()[:60]))
                return
            if w != "dead" or node != "n1":
                self.note("%s logged out on %s in window %s" % (u.name, node, w))
            u.out = True
            return
        if u.out:
            if m.group(3) is not None:
                res["resurrected"] += 1
                bad = True
                self.note("%s logged out on n1, logged in on %s (%s, counter %s)" % (u.name, node, w, m.group(3)))
        elif m.group(3) is None:
            res["stale"] += 1
            bad = True
            self.note("%s (counter %d) not logged in on %s (%s)" % (u.name, u.counter, node, w))
            u.lost = True
        else:
            counter = int(m.group(3))
            seen = counter - 1
            if seen < u.counter:
                res["stale"] += 1
                bad = True
                self.note("%s: %s saw counter %d, it had seen %d (%s)" % (u.name, node, seen, u.counter, w))
            elif seen > u.counter and not (u.uncertain and seen == u.counter + 1):
                res["unexpected"] += 1
                self.note("%s: %s saw counter %d, only %d was written (%s)" % (u.name, node, seen, u.counter, w))
            u.counter = counter
            u.uncertain = False
            if w == "dead" and node == "n1":
                u.wrote_dead = True
        if first:
            u.first_after_restart = node
            f = self.res["first_after_restart"]
            f["n1" if node == "n1" else "elsewhere"] += 1
            f["bad" if bad else "ok"] += 1

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(10)
        with self.lock:
            self.res["first_after_restart"]["missing"] = sum(
                1 for u in self.users if u.first_after_restart is None and not u.lost)
            return [{"sid": u.sid, "name": u.name, "counter": u.counter, "out": u.out, "lost": u.lost}
                    for u in self.users]


n1 = N1Users()


# ---------------------------------------------------------------- main

def main():
    os.makedirs(CTL, exist_ok=True)
    for k in range(USERS):
        login(2 if k % 2 == 0 else 3)
    open(os.path.join(CTL, "ready"), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(CTL, "go")):   # t_ready.sh: every node holds them
        if time.monotonic() > deadline or os.path.exists(os.path.join(CTL, "stop")):
            return finish({})
        time.sleep(0.02)
    phases, seen = {}, set()
    start = time.monotonic()
    i = 0
    while True:
        delay = start + i / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            start = time.monotonic() - i / RATE   # fell behind (CPU): do not burst to catch up
        i += 1
        if i % 10 == 0:
            for f in os.listdir(CTL):
                if f in seen:
                    continue
                kind, _, ph = f.partition("-")
                if kind == "down":
                    seen.add(f)
                    phases.setdefault(ph, Phase(ph)).t_down = time.monotonic()
                elif kind == "freeze":
                    seen.add(f)
                    p = phases.setdefault(ph, Phase(ph))
                    p.freeze()
                    with open(os.path.join(CTL, "frozen-" + ph + ".tmp"), "w") as out:
                        json.dump({"live": p.res["live"], "out": p.res["out"],
                                   "missed_updates": p.res["missed_updates"],
                                   "missed_logouts": p.res["missed_logouts"]}, out)
                    os.replace(os.path.join(CTL, "frozen-" + ph + ".tmp"), os.path.join(CTL, "frozen-" + ph))
                elif kind == "probe":
                    seen.add(f)
                    phases[ph].start()
                elif kind == "stop":
                    return finish(phases)
                elif f == "n1login":
                    seen.add(f)
                    n1.login_all()
                else:
                    seen.add(f)   # ready, go, and what this script writes
            if n1.users:
                n1.housekeeping()
            for ph, p in phases.items():
                if p.done.is_set() and ("result-" + ph) not in seen:
                    seen.add("result-" + ph)
                    tmp = os.path.join(CTL, "result-%s.json.tmp" % ph)
                    with open(tmp, "w") as out:
                        json.dump(p.res, out)
                    os.replace(tmp, os.path.join(CTL, "result-%s.json" % ph))
        with lock:
            background_op()
            stats["ops"] += 1


def finish(phases):
    for p in phases.values():
        if p.res["probe_start_ms"] is not None:
            p.done.wait(PROBE_DEADLINE + 5)
    n1_truth = n1.finish()
    stats["users"] = len(users) + len(n1_truth)
    stats["lost_notes"] = lost_notes[:20]
    with open(os.path.join(T, "truth.json"), "w") as out:
        json.dump([{"sid": u.sid, "name": u.name, "counter": u.counter, "out": u.out, "lost": u.lost}
                   for u in users] + n1_truth, out)
    with open(os.path.join(T, "n1.json"), "w") as out:
        json.dump(n1.res, out)
    with open(os.path.join(T, "stats.json"), "w") as out:
        json.dump(stats, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
