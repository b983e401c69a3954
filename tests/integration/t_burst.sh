#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# A burst beyond the inotify queue (docs/DESIGN.md "Catch-up and full sync":
# IN_Q_OVERFLOW triggers a rescan; nothing is lost). n1's daemon is frozen
# with SIGSTOP, 20,000 new session files are written into its session dir
# (one IN_CLOSE_WRITE each, more than fs.inotify.max_queued_events), and the
# daemon is thawed with SIGCONT: it must log the overflow, rescan, and all
# 20,000 must arrive on n2 byte-equal with equal mtimes (compared as one
# digest over every file's name, content hash and mtime ns). While it is
# frozen, 5 of 10 older sessions are also updated and 5 destroyed: their
# events are lost in the overflow too, and the rescan must still find them
# (a known session missing from the directory becomes a tombstone). The
# time from SIGCONT until n2's digest equals n1's is printed.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_burst
it_require_daemon

WAIT=${IT_WAIT:-60}

# At least 20,000 files, and more than this machine's inotify queue holds
# (16384 by default) so the overflow really happens; the test never changes
# the machine's sysctl. Past 120,000 files it would be too slow: then the
# burst is 20,000 and the overflow is not asserted.
qmax=$(cat /proc/sys/fs/inotify/max_queued_events 2>/dev/null || echo 16384)
N=${IT_BURST_FILES:-20000}
((N <= qmax && qmax + 4000 <= 120000)) && N=$((qmax + 4000))
OVERFLOW=1
((N <= qmax)) && OVERFLOW=0

cluster_create 2 && cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2
fault_phpish

# A few sessions before the burst, so the rescan also meets known files.
PYTHONPATH=$T python3 -c '
import os, sys, phpish
for i in range(10):
    phpish.write(os.path.join(sys.argv[1], "sess_pre%02d" % i), phpish.php_string("pre", str(i)))' \
	"$(node_sessions 1)" || fail "write 10 sessions before the burst"
check_converged "10 sessions before the burst reach n2" 10 1 2

pid=$(daemon_pid 1)
mark=$(log_mark 1)
kill -STOP "$pid" || it_abort "SIGSTOP n1's daemon"
# Whatever happens, never leave a stopped daemon behind (SIGTERM would wait).
fault_at_exit "kill -CONT $pid 2>/dev/null"
ok "n1's daemon frozen (SIGSTOP)"

t0=$(now_ms)
PYTHONPATH=$T python3 -c '
import os, sys, phpish
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    phpish.write(os.path.join(d, "sess_burst%05d" % i), b"i|i:%d;h|s:8:\"%08x\";" % (i, (i * 2654435761) % 2**32))' \
	"$(node_sessions 1)" "$N" || fail "write $N sessions"
t1=$(now_ms)
assert_eq "$(tree_count "$(node_sessions 1)")" $((N + 10)) "$N new session files written on n1 in $((t1 - t0)) ms"

PYTHONPATH=$T python3 -c '
import os, sys, phpish
for i in range(5):
    phpish.write(os.path.join(sys.argv[1], "sess_pre%02d" % i), phpish.php_string("pre", "updated %d" % i))
    phpish.destroy(os.path.join(sys.argv[1], "sess_pre%02d" % (5 + i)))' \
	"$(node_sessions 1)" || fail "update 5, destroy 5 older sessions"
ok "5 older sessions updated and 5 destroyed on n1 while its daemon is frozen"

kill -CONT "$pid" || fail "SIGCONT n1's daemon"
t_cont=$(now_ms)
ok "n1's daemon thawed (SIGCONT)"

if ((OVERFLOW)); then
	check "n1's daemon logs the inotify overflow" wait_until 10 log_has_since 1 "$mark" 'overflow'
	check "n1's daemon logs the rescan" wait_until 10 log_has_since 1 "$mark" 'rescan'
else
	it_note "fs.inotify.max_queued_events is $qmax: this burst cannot overflow it; not asserted"
fi

want=$(tree_digest "$(node_sessions 1)")
count_reached() { [[ $(tree_count "$(node_sessions 2)") -eq $((N + 5)) ]]; }
digest_equal() { [[ $(tree_digest "$(node_sessions 2)") == "$want" ]]; }
check "n2 has $((N + 5)) session files" wait_until "$WAIT" count_reached
check "n2's digest (names, content, mtime ns) equals n1's: $want" wait_until "$WAIT" digest_equal
t_done=$(now_ms)
it_note "measured: $N-file burst replicated in $((t_done - t_cont)) ms"
check_converged "file by file: n2 equals n1 (names, bytes, mtime ns)" 5 1 2
check "n1 has nothing pending for n2" wait_until 20 peer_settled 1 n2
assert_eq "$(node_stat 2 sessions)" $((N + 5)) "n2's daemon counts $((N + 5)) sessions"
destroyed_gone() {
	local k
	for k in 05 06 07 08 09; do gone_on "pre$k" 1 2 || return 1; done
}
check "the 5 destroyed older sessions are gone on n1 and n2" destroyed_gone
updated_equal() {
	local k
	for k in 00 01 02 03 04; do
		files_equal "$(node_sess_file 1 "pre$k")" "$(node_sess_file 2 "pre$k")" || return 1
		grep -q updated "$(node_sess_file 2 "pre$k")" || return 1
	done
}
check "the 5 updated older sessions carry the update on n2" updated_equal
check "n1's daemon is still running" daemon_running 1

check "cluster stops cleanly" cluster_stop
it_finish
