#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# A crash under load (docs/DESIGN.md "Versions, conflicts, deletes", "Catch-up at connect"):
# a steady PHP-style write load on n1 (~200 requests/s for ~6 s over ~100
# sessions: updates that bump a per-session counter, some creates, some
# destroys, each written as PHP's files handler writes), and n1's daemon is
# killed with SIGKILL in the middle and restarted ~1 s later while the load
# goes on. Changes made while it was dead are found by its start-up scan;
# sessions deleted while it was dead become tombstones because the state
# journal listed them. Once the load stops, n2 and n3 must converge to n1,
# and:
#   lost updates  = sessions live on n1 whose bytes or mtime on n2 or n3
#                   differ from n1's (or are missing there)
#   resurrected   = sessions the load deleted that exist on n1, n2 or n3
# Both must be 0. n1 itself must hold exactly what the load wrote last (no
# peer pushed an older version back onto it).
#
# Healing: n1's daemon is restarted anyway (that is the test), which resets
# its backoff; n2's and n3's links to n1 back off but carry nothing new.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_kill9
it_require_daemon

WAIT=${IT_WAIT:-30}
RATE=${IT_KILL9_RATE:-200}     # requests per second
OPS=${IT_KILL9_OPS:-1200}      # ~6 s at 200/s
KILL_AT=$((OPS * 2 / 5))       # kill after ~40 % of the load
START_AT=$((KILL_AT + RATE))   # restart ~1 s later

cluster_create 3 && cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2
check "n1 -> n3 connected" wait_until 10 peer_connected 1 n3
fault_phpish

# load.py DIR RATE OPS PROGRESS TRUTH: 100 sessions first (phase "base"),
# or the load (phase "load"): OPS requests paced at RATE/s, a fixed random
# sequence (seed 9): 80 % update a live session (counter + 1), 10 % create
# a new one, 10 % destroy a live one (while more than 60 are live). Every
# 25 requests the count goes to PROGRESS; at the end TRUTH gets
# {"live": {name: counter}, "deleted": [names]}.
cat >"$T/load.py" <<'EOF'
import json, os, random, sys, time
import phpish
d, phase, rate, ops, progress, truth = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
rnd = random.Random(9)
path = lambda name: os.path.join(d, name)

def content(name, counter):
    return (phpish.php_string("user", name[5:]) + b"n|i:%d;" % counter +
            phpish.php_string("pad", ("%s:%d;" % (name, counter)) * 8))

def put_progress(n):
    with open(progress + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.replace(progress + ".tmp", progress)

live = {"sess_k9base%03d" % i: 1 for i in range(100)}
if phase == "base":
    for name in live:
        phpish.write(path(name), content(name, 1))
    sys.exit(0)

deleted, created = {}, 0
start = time.monotonic()
for i in range(ops):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    r = rnd.random()
    if r < 0.8:
        name = rnd.choice(sorted(live))
        live[name] += 1
        phpish.write(path(name), content(name, live[name]))
    elif r < 0.9 or len(live) <= 60:
        name = "sess_k9new%04d" % created
        created += 1
        live[name] = 1
        phpish.write(path(name), content(name, 1))
    else:
        name = rnd.choice(sorted(live))
        del live[name]
        deleted[name] = i + 1
        phpish.destroy(path(name))
    if (i + 1) % 25 == 0:
        put_progress(i + 1)
put_progress(ops)
with open(truth, "w") as f:
    json.dump({"live": live, "deleted": deleted,
               "seconds": time.monotonic() - start}, f)
EOF

load() { PYTHONPATH=$T python3 "$T/load.py" "$(node_sessions 1)" "$1" "$RATE" "$OPS" "$T/progress" "$T/truth.json"; }
progress_at_least() { [[ $(cat "$T/progress" 2>/dev/null || echo 0) -ge $1 ]]; }
load_running() { _it_alive "$load_pid"; }

check "n1: 100 base sessions written" load base
check_converged "the 100 base sessions reach n2 and n3" "$WAIT" 1 2 3

echo 0 >"$T/progress"
load load &
load_pid=$!
it_track_pid "$load_pid"
t_load=$(now_ms)

check "load reaches request $KILL_AT" wait_until 20 progress_at_least "$KILL_AT"
daemon_kill9 1
t_kill=$(now_ms)
p_kill=$(cat "$T/progress")
ok "n1's daemon killed with SIGKILL at request $p_kill ($((t_kill - t_load)) ms into the load)"
check "load reaches request $START_AT with n1's daemon dead" wait_until 20 progress_at_least "$START_AT"
p_start=$(cat "$T/progress")
check "n1's daemon restarts" daemon_start 1
# After a SIGKILL the old socket file is still there, so daemon_start does
# not prove the new daemon listens yet: wait for it to answer.
check "n1's restarted daemon answers --status" wait_until 10 daemon_answers 1
t_start=$(now_ms)
it_note "n1's daemon was dead for $((t_start - t_kill)) ms"

check "the load finishes" wait_until 30 not load_running
wait "$load_pid"
assert_eq "$?" 0 "the load script exits 0"
it_note "load: $OPS requests in $(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$T/truth.json") s"
t_end=$(now_ms)

check_converged "n2 and n3 converge to n1" "$WAIT" 1 2 3
it_note "measured: kill -9: converged $(($(now_ms) - t_end)) ms after the load stopped"

# ---------------------------------------------------------------- figures
read -r truth_bad lost resurrected < <(python3 - "$T/truth.json" "$(node_sessions 1)" "$(node_sessions 2)" "$(node_sessions 3)" <<'EOF'
import json, os, sys
truth = json.load(open(sys.argv[1]))
dirs = sys.argv[2:]

def get(d, name):
    p = os.path.join(d, name)
    try:
        with open(p, "rb") as f:
            return f.read(), os.stat(p).st_mtime_ns
    except FileNotFoundError:
        return None

truth_bad = lost = resurrected = 0
for name, counter in truth["live"].items():
    a = get(dirs[0], name)
    if a is None or (b"n|i:%d;" % counter) not in a[0]:
        truth_bad += 1
        print("# n1 does not hold the last write of %s (counter %d): %r" % (name, counter, a and a[0][:40]), file=sys.stderr)
        continue
    for d in dirs[1:]:
        if get(d, name) != a:
            lost += 1
            print("# lost update: %s on %s" % (name, d), file=sys.stderr)
            break
for name in truth["deleted"]:
    where = [d for d in dirs if get(d, name) is not None]
    if where:
        resurrected += 1
        print("# resurrected: %s on %s" % (name, " ".join(where)), file=sys.stderr)
print(truth_bad, lost, resurrected)
EOF
)
read -r n_live n_deleted n_dead < <(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
lo, hi = int(sys.argv[2]), int(sys.argv[3]) + 25   # progress is written every 25 requests
print(len(t["live"]), len(t["deleted"]), sum(1 for i in t["deleted"].values() if lo < i <= hi))' \
	"$T/truth.json" "$p_kill" "$p_start")
it_note "load ended with $n_live live sessions and $n_deleted destroyed, about $n_dead of them while n1's daemon was dead"
if ((n_dead > 0)); then ok "some sessions were destroyed while n1's daemon was dead ($n_dead)"; else fail "some sessions were destroyed while n1's daemon was dead"; fi
it_note "measured: kill -9: $lost lost, $resurrected resurrected"
assert_eq "$truth_bad" 0 "n1 holds exactly the load's last write of every live session"
assert_eq "$lost" 0 "no lost updates on n2, n3"
assert_eq "$resurrected" 0 "no destroyed session resurrected on n1, n2, n3"
check "n1 has nothing pending for n2" wait_until 10 peer_settled 1 n2
check "n1 has nothing pending for n3" wait_until 10 peer_settled 1 n3

check "cluster stops cleanly" cluster_stop
it_finish
