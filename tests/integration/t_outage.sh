#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# A receiver's daemon is down while its peer takes 500 changes (docs/DESIGN.md
# "Catch-up and full sync"): n2's daemon is stopped (its sshd stays up, so
# n1's attempts reach --serve, which cannot reach the daemon), and n1 takes
# 250 creates, 150 updates and 100 destroys, written the way PHP's files
# handler writes (open O_CREAT|O_RDWR, flock LOCK_EX, ftruncate, write,
# close; destroy = unlink), in a fixed interleaved order. Then n2's daemon
# starts and the time until n2 has converged is measured: every session
# byte-equal with the same mtime to the ns, every destroyed one absent.
#
# Healing: n1's daemon is NOT restarted. The outage lasts about a second, so
# n1's reconnect backoff (0.5 s doubling, jittered) is still at most ~1-2 s
# when n2 comes back; the measured time includes that wait, and the
# reconnect and the catch-up itself are printed separately.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_outage
it_require_daemon

WAIT=${IT_WAIT:-30}

cluster_create 2 && cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2
fault_phpish

# driver.py DIR PHASE: base = create outBase000..249 (~1 KB each, so updates
# can travel as deltas); outage = the 500 changes, interleaved: for
# i in 0..249: create outNew<i>; if i < 150: update outBase<i>; if i < 100:
# destroy outBase<150+i>. Prints the number of changes made.
cat >"$T/driver.py" <<'EOF'
import hashlib, os, sys
import phpish
d, phase = sys.argv[1], sys.argv[2]
path = lambda sid: os.path.join(d, "sess_" + sid)

def blob(tag, n):
    s = ""
    i = 0
    while len(s) < n:
        s += hashlib.md5(("%s-%d" % (tag, i)).encode()).hexdigest()
        i += 1
    return s[:n]

def session(sid, counter):
    return (phpish.php_string("user", "u-" + sid) + b"n|i:%d;" % counter +
            phpish.php_string("blob", blob(sid, 900)))

changes = 0
if phase == "base":
    for i in range(250):
        phpish.write(path("outBase%03d" % i), session("outBase%03d" % i, 1))
        changes += 1
else:
    for i in range(250):
        phpish.write(path("outNew%03d" % i), session("outNew%03d" % i, 1))
        changes += 1
        if i < 150:
            phpish.write(path("outBase%03d" % i), session("outBase%03d" % i, 2))
            changes += 1
        if i < 100:
            if not phpish.destroy(path("outBase%03d" % (150 + i))):
                sys.exit("outBase%03d was missing" % (150 + i))
            changes += 1
print(changes)
EOF

drive() { PYTHONPATH=$T python3 "$T/driver.py" "$(node_sessions 1)" "$1"; }

assert_eq "$(drive base)" 250 "n1: 250 base sessions written"
check_converged "the 250 base sessions reach n2" "$WAIT" 1 2
check "n1 has nothing pending for n2" wait_until 10 peer_settled 1 n2

# ---------------------------------------------------------------- outage
check "n2's daemon stops cleanly" daemon_stop 2
t_down=$(now_ms)
check "n1 sees n2 go away" wait_until 25 peer_down 1 n2
assert_eq "$(drive outage)" 500 "n1: 500 changes while n2's daemon is down (250 creates, 150 updates, 100 destroys)"

# n1 has taken them all in: 400 live sessions, 100 tombstones.
n1_took_all() { [[ $(node_stat 1 sessions) == 400 && $(node_stat 1 tombstones) == 100 ]]; }
check "n1 has recorded the 500 changes (400 sessions, 100 tombstones)" wait_until 10 n1_took_all
pending=$(peer_stat 1 n2 pending)
assert_eq "$pending" 500 "n1 holds 500 pending changes for n2"
# The reason arrives with n1's next attempt (reconnect backoff, up to ~1 s
# after n2 went away): the relay on n2 reports that it cannot reach the socket.
names_socket() { [[ $(peer_stat 1 n2 last_error) == *sessync.sock* ]]; }
check "n1's last_error for n2 names n2's daemon socket" wait_until 10 names_socket
b0=$(peer_stat 1 n2 bytes_sent)
f0=$(peer_stat 1 n2 bytes_full)

# ---------------------------------------------------------------- back
daemon_start 2 || it_abort "daemon_start 2"
t_up=$(now_ms)
it_note "n2's daemon was down for $((t_up - t_down)) ms"
check "n1 reconnects to n2 (no restart of n1)" wait_until 35 peer_connected 1 n2
t_conn=$(now_ms)
check_converged "n2 converges: 400 sessions byte-equal with equal mtime, 100 destroyed ones absent" "$WAIT" 1 2
t_done=$(now_ms)
it_note "measured: 500-change outage converged in $((t_done - t_up)) ms (n1 reconnected after $((t_conn - t_up)) ms, catch-up took $((t_done - t_conn)) ms)"

present=0
for ((i = 150; i < 250; i++)); do
	[[ -e $(node_sess_file 2 "outBase$i") ]] && present=$((present + 1))
done
assert_eq "$present" 0 "none of the 100 destroyed sessions is on n2"
assert_eq "$(tree_count "$(node_sessions 2)")" 400 "n2 holds exactly 400 sessions"
check "n1's status: pending 0 for n2" wait_until 10 peer_settled 1 n2
b1=$(peer_stat 1 n2 bytes_sent)
f1=$(peer_stat 1 n2 bytes_full)
if [[ $b1 =~ ^[0-9]+$ && $f1 =~ ^[0-9]+$ ]]; then
	it_note "measured: catch-up sent $((b1 - b0)) bytes for $((f1 - f0)) bytes of whole files"
fi
assert_eq "$(peer_stat 1 n2 last_error)" "" "n1's last_error for n2 is cleared once connected"
assert_eq "$(peer_stat 1 n2 conflicts)" 0 "no conflicts"
assert_eq "$(node_stat 2 tombstones)" 100 "n2 holds the 100 tombstones"

check "cluster stops cleanly" cluster_stop
it_finish
