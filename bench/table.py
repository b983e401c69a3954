#!/usr/bin/env python3
"""bench/table.py RESULTS: the closing table of `make bench`, from the
"KEY VALUE..." lines bench/drain.sh and bench/steady.sh wrote in one run:
sessync's figure, the competitor's, their ratio (sessync / competitor:
below 1 is sessync ahead), and the issue 13 target."""
import sys

res = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    res[k] = v.split()


def kv(key):
    return dict(x.split("=", 1) for x in res.get(key, []) if "=" in x)


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def ratio(a, b):
    a, b = num(a), num(b)
    return "%.2f" % (a / b) if a is not None and b else "-"


rows = []


def drain(tag, what, target):
    s = res.get("drain.%s.sessync_ms" % tag)
    r = res.get("drain.%s.rsync_ms" % tag)
    ok = res.get("drain.%s.ok" % tag, ["?"])
    size = res.get("drain.%s.size" % tag)
    if size:
        n, peers, rtt = (int(x) for x in size)
        what = "--full-sync %s x 1 KB to %d peer%s, %s" % (
            "{:,}".format(n), peers, "s" if peers > 1 else "",
            "%d ms round trip" % rtt if rtt else "loopback (vs %d rsync -a in parallel)" % peers)
    if not s or not r:
        rows.append((what, "-", "-", "-", target))
        return
    rs = [float(x) for x in r]
    ss = [float(x) for x in s]
    mean = sum(rs) / len(rs)
    smean = sum(ss) / len(ss)
    note = "" if ok[0] == "1" else " INCOMPLETE"
    rows.append((what, "%.2f s (%s)%s" % (smean / 1000, " / ".join("%.2f" % (x / 1000) for x in ss), note),
                 "%.2f s (%s)" % (mean / 1000, " / ".join("%.2f" % (x / 1000) for x in rs)),
                 ratio(smean, mean), target))
    c = res.get("drain.%s.cpu_per_file_us" % tag)
    if c:
        rows.append(("  CPU per file per peer, all nodes", c[0] + " us", c[1] + " us", ratio(c[0], c[1]), ""))
    b = res.get("drain.%s.bytes_per_file" % tag)
    if b:
        rows.append(("  bytes per file per peer (delay line)", b[0], b[1], ratio(b[0], b[1]), ""))


drain("loop100k", "--full-sync 100,000 x 1 KB to 2 peers, loopback", "<= 0.5")
rates = sorted({int(k.split(".")[2]) for k in res if k.startswith("steady.")})
TOOLS = {"rsync": "inotifywait+rsync", "lsyncd": "lsyncd"}


def best(rate, field):
    """The competitor's best figure for field at rate, the tool, its figures."""
    got = []
    for t in TOOLS:
        v = kv("steady.%s.%d" % (t, rate))
        if num(v.get(field)) is not None:
            got.append((num(v[field]), t, v))
    # A tool that did not deliver everything does not set the bar.
    whole = [g for g in got if g[2].get("lost") == "0"]
    return min(whole or got, key=lambda g: g[0]) if got else (None, None, {})


for rate in rates:
    s = kv("steady.sessync.%d" % rate)
    _, t, c = best(rate, "p99")
    tgt = {6000: "<= 1 / <= 5 ms", 12000: "<= 1 / <= 10 ms"}.get(rate, "")
    rows.append(("p50 / p99 / max ms at %d writes/s, 2 peers (lost)" % rate,
                 "%s / %s / %s (%s)" % (s.get("p50"), s.get("p99"), s.get("max"), s.get("lost")),
                 "%s / %s / %s (%s) %s" % (c.get("p50"), c.get("p99"), c.get("max"), c.get("lost"), TOOLS.get(t, "")),
                 "p99 " + ratio(s.get("p99"), c.get("p99")), tgt))
for rate in rates:
    s = kv("steady.sessync.%d" % rate)
    v, t, _ = best(rate, "cpu_ms")
    rows.append(("CPU per update, all processes of all nodes, %d/s" % rate, "%s ms" % s.get("cpu_ms"),
                 "%s ms %s" % (v, TOOLS.get(t, "")), ratio(s.get("cpu_ms"), v), "<= 0.12 ms"))
for rate in rates:
    s = kv("steady.sessync.%d" % rate)
    v, t, _ = best(rate, "bytes")
    rows.append(("bytes on the wire per update per peer, %d/s" % rate, s.get("bytes", "-"),
                 "%s %s" % ("%.0f" % v if v is not None else "-", TOOLS.get(t, "")), ratio(s.get("bytes"), v), "<= 400"))
r = res.get("rss.loop100k")
rows.append(("RSS, 100,000 sessions, 3 nodes (origin / replica)",
             "%s / %s MB" % (r[0], r[1]) if r else "-", "-", "-", "<= 64 MB"))
drain("rtt10", "--full-sync 20,000 x 1 KB to 1 peer, 10 ms round trip", "<= 0.5")
drain("rtt50", "--full-sync 20,000 x 1 KB to 1 peer, 50 ms round trip", "<= 0.5")

head = ("figure", "sessync", "competitor (same run)", "ratio", "target")
w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
print("== issue 13 table (one run; ratio = sessync / competitor, below 1 is sessync ahead; competitor: "
      "rsync -a; steady: the better of inotifywait + rsync over ssh ControlMaster and lsyncd, per row)")
for r in [head] + rows:
    print("   " + "  ".join(str(r[i]).ljust(w[i]) for i in range(5)).rstrip())
