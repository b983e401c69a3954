#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# A drain into a node whose daemon is stopped (docs/DESIGN.md "Inbound
# connections", "Full sync"): --serve finds no daemon and starts a stand-in
# that applies the frames itself under n2's state lock, with the daemon's
# checks, receiver and journal.
#  a. every daemon stopped; on n1: 200 new sessions, an update, a logout.
#     `--full-sync n2` on n1 (through n2's real sshd) exits 0; on its exit
#     every session is on n2 (bytes, mtime ns), the logout is a tombstone in
#     n2's journal and not resurrected, and a logout made on n2 meanwhile is
#     not undone; no stand-in is left. n2's daemon then starts without
#     waiting, and with n1's daemon the cluster converges.
#  b. two drains at once, n1 and n3 into the stopped n2: both exit 0, both
#     sets of sessions arrive.
#  c. n2's daemon starts during a drain: it waits for the stand-in to hand
#     over (logged), never runs beside it, and the drain, retried by
#     --full-sync, exits 0 with every session on n2.
#  d. n2 rebooted, no daemon: the drain fails saying the first start since
#     boot is the daemon's, and leaves the boot id to it.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_drain_stopped
it_require_daemon

cluster_create 3 && cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 15 peer_connected 1 n2
fault_phpish

# full_sync I ARGS...: `--full-sync ARGS` on node I; FS_OUT, FS_RC, FS_MS; its
# stderr goes to $T/fsI.err (checked for session names at the end).
full_sync() {
	local i=$1 t0
	shift
	t0=$(now_ms)
	FS_OUT=$(sessync_cli "$i" --full-sync "$@" 2>>"$T/fs$i.err")
	FS_RC=$?
	FS_MS=$(($(now_ms) - t0))
	printf '%s\n' "$FS_OUT" | sed "s/^/# n$i full-sync: /"
}

# make_sessions I PREFIX COUNT SIZE: COUNT sessions PREFIX0.. on node I the
# way PHP's handler writes them, SIZE bytes of payload each.
make_sessions() {
	python3 - "$(node_sessions "$1")" "$2" "$3" "$4" "$T" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[5])
import phpish
d, pre, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    phpish.write(os.path.join(d, "sess_%s%05d" % (pre, i)), phpish.php_string("v", ("%s%05d;" % (pre, i)) * (size // 12 + 1)))
PY
}

# same_prefix I J PREFIX: every sess_PREFIX* of node I is on node J, same
# bytes and mtime ns, and J has no other sess_PREFIX* file.
same_prefix() {
	python3 - "$(node_sessions "$1")" "$(node_sessions "$2")" "sess_$3" <<'PY'
import os, sys
a, b, pre = sys.argv[1], sys.argv[2], sys.argv[3]
na = sorted(n for n in os.listdir(a) if n.startswith(pre))
nb = sorted(n for n in os.listdir(b) if n.startswith(pre))
if not na or na != nb:
    sys.exit(1)
for n in na:
    sa, sb = os.stat(os.path.join(a, n)), os.stat(os.path.join(b, n))
    if sa.st_mtime_ns != sb.st_mtime_ns or open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read():
        sys.exit(1)
PY
}

standin_gone() { [[ ! -e $(node_state 2)/serve.sock ]] && ! pgrep -f -- "-c $(node_conf 2) --serve" >/dev/null; }

# ---------------------------------------------------------------- a
php_session 1 dUpd '$_SESSION["v"] = "old";' || fail "php create dUpd"
php_session 1 dGone '$_SESSION["user"] = "alice";' || fail "php create dGone"
php_session 1 dLocal '$_SESSION["user"] = "bob";' || fail "php create dLocal"
check "(a) dUpd, dGone, dLocal replicated to n2" wait_until 15 files_equal "$(node_sess_file 1 dLocal)" "$(node_sess_file 2 dLocal)"
check "(a) n2's daemon stops" daemon_stop 2
php_destroy 2 dLocal || fail "php destroy dLocal on n2 (a logout there, its daemon stopped)"
check "(a) n1's daemon stops" daemon_stop 1
check "(a) n3's daemon stops" daemon_stop 3
make_sessions 1 dA 200 700 || fail "(a) create 200 sessions on n1"
php_session 1 dUpd '$_SESSION["v"] = "updated while every daemon was down";' || fail "php update dUpd"
php_destroy 1 dGone || fail "php destroy dGone (a logout on n1)"
full_sync 1 n2
assert_eq "$FS_RC" 0 "(a) --full-sync n2 into n2's stopped daemon: exit 0"
check "(a) n2: ok line" grep -Eq '^n2: ok, [0-9]+ sent, 0 failed$' <<<"$FS_OUT"
it_note "measured: drain of 202 changes into a stopped daemon: $FS_MS ms"
check "(a) on exit all 200 new sessions are on n2 (bytes, mtime ns)" same_prefix 1 2 dA
check "(a) on exit the update is on n2" files_equal "$(node_sess_file 1 dUpd)" "$(node_sess_file 2 dUpd)"
check "(a) the logout made on n1 before the drain is gone on n2" gone_on dGone 2
assert_eq "$(journal_kind 2 dGone)" 1 "(a) n2's journal holds dGone as a destroy (the stand-in's own journal)"
check "(a) dLocal, logged out on n2 while its daemon was stopped, is not brought back by the drain" gone_on dLocal 2
check "(a) no stand-in is left on n2 (socket removed, process gone)" wait_until 5 standin_gone
check "(a) n2's daemon starts" daemon_start 2
check "(a) ... without waiting for anyone" not grep -q 'waiting for it to hand over' "$(node_log 2)"
check "(a) n1's daemon starts" daemon_start 1
check "(a) n3's daemon starts" daemon_start 3
check_converged "(a) n1, n2, n3 converge" 30 1 2 3
check "(a) dGone is not resurrected anywhere" gone_on dGone 1 2 3
check "(a) n2's daemon turned dLocal's logout into a tombstone: gone everywhere" wait_until 15 gone_on dLocal 1 2 3
assert_eq "$(journal_kind 2 dGone)" 1 "(a) n2's journal still holds dGone as a destroy"

# ---------------------------------------------------------------- b
check "(b) n2's daemon stops" daemon_stop 2
check "(b) n1's daemon stops" daemon_stop 1
check "(b) n3's daemon stops" daemon_stop 3
make_sessions 1 dB1x 300 2000 || fail "(b) create 300 sessions on n1"
make_sessions 3 dB3x 300 2000 || fail "(b) create 300 sessions on n3"
( full_sync 1 n2; echo "$FS_RC" >"$T/b1.rc"; printf '%s\n' "$FS_OUT" >"$T/b1.out" ) &
bpid1=$!
( full_sync 3 n2; echo "$FS_RC" >"$T/b3.rc"; printf '%s\n' "$FS_OUT" >"$T/b3.out" ) &
bpid3=$!
it_track_pid "$bpid1"
it_track_pid "$bpid3"
wait "$bpid1" "$bpid3"
assert_eq "$(cat "$T/b1.rc")" 0 "(b) n1's drain into the stopped n2, beside n3's: exit 0"
assert_eq "$(cat "$T/b3.rc")" 0 "(b) n3's drain into the stopped n2, beside n1's: exit 0"
check "(b) n1's 300 sessions are on n2" same_prefix 1 2 dB1x
check "(b) n3's 300 sessions are on n2" same_prefix 3 2 dB3x
check "(b) no stand-in is left on n2" wait_until 5 standin_gone

# ---------------------------------------------------------------- c
make_sessions 1 dC 12000 1000 || fail "(c) create 12000 sessions on n1"
( full_sync 1 n2; echo "$FS_RC" >"$T/c.rc"; printf '%s\n' "$FS_OUT" >"$T/c.out" ) &
cpid=$!
it_track_pid "$cpid"
# Some of the drain has landed through the stand-in: now the daemon starts.
some_arrived() { compgen -G "$(node_sessions 2)/sess_dC*" >/dev/null; }
check "(c) the drain is under way (a stand-in serves on n2)" wait_until 30 some_arrived
IT_START_TIMEOUT=40 daemon_start 2 || fail "(c) n2's daemon did not start"
wait "$cpid"
assert_eq "$(cat "$T/c.rc")" 0 "(c) the drain during which n2's daemon started: exit 0"
sed 's/^/# (c) /' "$T/c.out"
check "(c) on exit all 12000 sessions are on n2" same_prefix 1 2 dC
check "(c) n2's daemon logged that it waited for the stand-in" grep -q 'waiting for it to hand over' "$(node_log 2)"
check "(c) ... and that the state was handed over" grep -q 'handed over after' "$(node_log 2)"
# The stand-in yields to the daemon mid-drain (it does not make the daemon
# wait for the drain's end): the cut connection was tried again, and the
# daemon waited well under the 30 s it allows.
check "(c) the drain was cut by the handover and tried again" grep -q 'trying again' "$T/fs1.err"
waited=$(sed -n 's/.*handed over after \([0-9]*\) ms.*/\1/p' "$(node_log 2)" | tail -n 1)
if [[ $waited =~ ^[0-9]+$ ]] && ((waited < 5000)); then ok "(c) the daemon waited $waited ms (< 5 s) for the stand-in"
else fail "(c) the daemon waited '$waited' ms (< 5 s) for the stand-in"; fi
check "(c) no stand-in is left on n2" wait_until 5 standin_gone
check "(c) n2's daemon is running" daemon_running 2
check "(c) n1's daemon starts" daemon_start 1
check "(c) n3's daemon starts" daemon_start 3
check_converged "(c) n1, n2, n3 converge" 60 1 2 3
check "(c) dGone is still gone everywhere" gone_on dGone 1 2 3

# ---------------------------------------------------------------- d
# After a reboot the first start is the daemon's: a stand-in would record
# this boot's id and forget the journal's files only in memory, and the
# daemon's start after it would take them for logouts.
check "(d) n2's daemon stops" daemon_stop 2
check "(d) n1's daemon stops" daemon_stop 1
check "(d) n3's daemon stops" daemon_stop 3
check "(d) no stand-in runs on n2 (the daemons' links to it are gone)" wait_until 10 standin_gone
node_reboot 2 || fail "(d) node_reboot 2"
boot_before=$(cat "$(node_state 2)/boot_id")
php_session 1 dD '$_SESSION["d"] = 1;' || fail "php create dD"
full_sync 1 n2
assert_eq "$FS_RC" 1 "(d) a drain into a rebooted node with no daemon: exit 1"
check "(d) n2: FAILED, saying the first start since boot is the daemon's" grep -q '^n2: FAILED, .*first start since boot is the daemon' <<<"$FS_OUT"
assert_eq "$(cat "$(node_state 2)/boot_id")" "$boot_before" "(d) n2's boot id is untouched"
check "(d) n2's daemon starts" daemon_start 2
check "(d) ... and takes it as its first start since boot" grep -q 'first start since boot' "$(node_log 2)"
check "(d) n1's daemon starts" daemon_start 1
check "(d) n3's daemon starts" daemon_start 3
check_converged "(d) n1, n2, n3 converge" 60 1 2 3

check "cluster stops cleanly" cluster_stop
it_finish
