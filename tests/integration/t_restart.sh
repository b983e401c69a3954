#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# Tombstones survive a daemon restart (docs/DESIGN.md "Versions, conflicts,
# deletes": a destroyed session must never come back from a peer that
# missed the delete). Three nodes; n3 is cut off (daemon and sshd stopped)
# while it still holds session S. n1 destroys S (n2 follows). Then n1's and
# n2's daemons are restarted, so their tombstones can only come from
# state_dir/journal. Then n3 comes back with its stale S: S must be deleted
# on n3 and must never reappear on n1 or n2 (watched for 3 s after
# convergence, with every link up, so n3's catch-up towards n1 and n2 has
# run).
#
# Part E, the tombstone a restart makes: session E was last written (v1) on
# n1 and replicated, then n1's daemon is stopped, PHP's GC on n1 expires E
# (older than the lifetime), and the daemon starts again. Its start-up scan
# sees that the journal knew E and makes an expiry tombstone, which must
# carry the deleted file's version v1 (docs/DESIGN.md: "An expiry ... carries the
# deleted file's version and beats only versions up to it"), so n2's and
# n3's copies (v1 too) are deleted and E does not come back to n1. E's two
# versions are written with mtimes 2 h in the past, 10 s apart: the same as
# a user's last two requests 10 s apart, followed by 24 min of inactivity,
# without the wait.
# Part F, in the same stop/start: session F was written 1500 s ago and
# again 1400 s ago (younger than the 1440 s lifetime), replicated; while
# n1's daemon is down the user logs out on n1 (php_destroy). At start the
# tombstone must be a destroy (the file was younger than the lifetime) and
# F must be gone everywhere and stay gone: a logout never comes back.
#
# Backoff: n1's and n2's links to n3 start failing when they restart; n3 is
# brought back right after (well under a second later), so their backoff is
# still at most ~1 s. The wait is bounded by the 30 s cap anyway.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_restart
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-15}
S=rstLogout0123456789abcdef

cluster_create 3 && cluster_start || it_abort "cluster did not start"
for p in 2 3; do
	check "n1 -> n$p connected" wait_until 10 peer_connected 1 n$p
done

check "n1: PHP creates S" php_session 1 $S '$_SESSION["user"] = "mallory"; $_SESSION["role"] = "admin";'
for k in 1 2; do
	php_session 1 "rstKeep$k" '$_SESSION["keep"] = '"$k"';' || fail "php create rstKeep$k"
done
check_converged "S and 2 other sessions on n1, n2, n3" "$WAIT" 1 2 3
cp -p -- "$(node_sess_file 3 $S)" "$T/S.stale"

# ---------------------------------------------------------------- n3 cut off
check "n3's daemon stops cleanly" daemon_stop 3
sshd_stop 3
check "n1 sees n3 down" wait_until 25 peer_down 1 n3
check "n2 sees n3 down" wait_until 25 peer_down 2 n3

check "n1: PHP destroys S (logout)" php_destroy 1 $S
check "S is gone on n1 and n2" wait_until "$WAIT" gone_on $S 1 2
check "n3 (cut off) still holds the stale S" files_equal "$T/S.stale" "$(node_sess_file 3 $S)"
check "n1's state journal holds a destroy tombstone for S" wait_until 5 journal_is 1 $S 1
check "n2's state journal holds a destroy tombstone for S" wait_until 5 journal_is 2 $S 1
grep -h " sess_$S\$" "$(node_state 1)/journal" | sed 's/^/# n1 journal: /'

# ---------------------------------------------------------------- restart n1, n2
check "n1's daemon stops cleanly" daemon_stop 1
check "n2's daemon stops cleanly" daemon_stop 2
daemon_start 1 || it_abort "daemon_start 1"
daemon_start 2 || it_abort "daemon_start 2"
t_restart=$(now_ms)
t1=$(node_stat 1 tombstones)
t2=$(node_stat 2 tombstones)
if [[ $t1 =~ ^[0-9]+$ && $t2 =~ ^[0-9]+$ ]] && ((t1 >= 1 && t2 >= 1)); then
	ok "after the restart n1 and n2 hold tombstones from their journals ($t1, $t2)"
else fail "after the restart n1 and n2 hold tombstones from their journals ('$t1', '$t2')"; fi

# ---------------------------------------------------------------- n3 back
sshd_start 3 || it_abort "sshd_start 3"
daemon_start 3 || it_abort "daemon_start 3"
it_note "n3 came back $(($(now_ms) - t_restart)) ms after n1 and n2 restarted"
check "S is deleted on n3" wait_until 35 gone_on $S 3
it_note "measured: stale S removed from n3 $(($(now_ms) - t_restart)) ms after n1 and n2 restarted"
for a in 1 2 3; do
	for b in 1 2 3; do
		((a == b)) && continue
		check "n$a -> n$b connected" wait_until 35 peer_connected $a n$b
	done
done
check_converged "n1, n2, n3 converge" "$WAIT" 1 2 3
check "S never reappears on n1, n2, n3 (3 s, every link up)" stays_for 3 gone_on $S 1 2 3
check "n3's state journal now holds a destroy tombstone for S" journal_is 3 $S 1
check "n1's journal still holds the destroy tombstone for S" journal_is 1 $S 1
for k in 1 2; do
	check "rstKeep$k is still everywhere" files_equal "$(node_sess_file 1 rstKeep$k)" "$(node_sess_file 3 rstKeep$k)"
done

# ---------------------------------------------------------------- E, F: tombstones made at start-up
fault_phpish
# write_at SID CONTENT MTIME_NS: n1 writes sess_SID as PHP does, with that mtime.
write_at() {
	PYTHONPATH=$T python3 -c '
import sys, phpish
phpish.write(sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]))' "$(node_sess_file 1 "$1")" "$2" "$3"
}
E=rstExpire0123456789abcdef
v0=$(($(date +%s%N) - 7200 * 1000000000))
v1=$((v0 + 10 * 1000000000))
check "E: n1 writes E (mtime 2 h ago)" write_at $E 'user|s:4:"erin";' "$v0"
check_converged "E: v0 replicated" "$WAIT" 1 2 3
check "E: n1 writes E again, 10 s later (still 2 h ago)" write_at $E 'user|s:4:"erin";n|i:2;' "$v1"
check_converged "E: v1 replicated" "$WAIT" 1 2 3
cp -p -- "$(node_sess_file 1 $E)" "$T/E.v1"
it_note "n1's journal record for E before the stop: $(grep -h " sess_$E\$" "$(node_state 1)/journal" | tail -n 1)"

F=rstLateLogout0123456789ab
f0=$(($(date +%s%N) - 1500 * 1000000000))
f1=$((f0 + 100 * 1000000000))
check "F: n1 writes F (mtime 1500 s ago)" write_at $F 'user|s:5:"frank";' "$f0"
check_converged "F: f0 replicated" "$WAIT" 1 2 3
check "F: n1 writes F again (mtime 1400 s ago, younger than the lifetime)" write_at $F 'user|s:5:"frank";n|i:2;' "$f1"
check_converged "F: f1 replicated" "$WAIT" 1 2 3
it_note "n1's journal record for F before the stop: $(grep -h " sess_$F\$" "$(node_state 1)/journal" | tail -n 1)"

check "E, F: n1's daemon stops cleanly" daemon_stop 1
check "F: the user logs out on n1 while the daemon is down" php_destroy 1 $F
assert_eq "$(php_gc 1 rstGcRequest0123456 1440)" 1 "E: PHP's GC on n1 expires E (only E) while the daemon is down"
mark=$(log_mark 1)
check "E, F: n1's daemon restarts" daemon_start 1
F_tag=$(sid_tag $F) E_tag=$(sid_tag $E)   # logs name a session by its tag
check "F: n1's start-up scan notices that F was deleted" wait_until 5 log_has_since 1 "$mark" "session $F_tag: deleted here"
how=$(log_since 1 "$mark" | grep -E -o "session $F_tag: deleted here \([a-z]+\)" | head -n 1)
assert_eq "$how" "session $F_tag: deleted here (destroyed)" "F: ... as a logout (destroy), the file being younger than the lifetime"
check "E: n1's start-up scan makes an expiry tombstone (T 2) for E" wait_until 5 log_has_since 1 "$mark" "session $E_tag: deleted here \(expired\)"
rec=$(awk -v n="sess_$E" '$1 == "T" && $2 == 2 && $6 == n { r = $3 } END { print r }' "$(node_state 1)/journal")
it_note "n1's expiry tombstone for E carries mtime ${rec:-none}; the deleted file's was $v1"
assert_eq "$rec" "$v1" "E: the expiry tombstone carries the deleted file's version (v1), not an older one"
for a in 1 2 3; do
	for b in 1 2 3; do
		((a == b)) && continue
		check "E, F: n$a -> n$b connected" wait_until 35 peer_connected $a n$b
	done
done
# Every link is up and caught up: a delete takes well under a second now.
check "E: the expired session is gone on n1, n2 and n3" wait_until 5 gone_on $E 1 2 3
check "E: ... and it does not come back (3 s, every link up)" stays_for 3 gone_on $E 1 2 3
for i in 1 2 3; do
	files_equal "$T/E.v1" "$(node_sess_file $i $E)" && it_note "E: n$i holds E (v1)"
done
check "F: the logged-out session is gone on n1, n2 and n3" wait_until 5 gone_on $F 1 2 3
check "F: ... and it does not come back (3 s, every link up)" stays_for 3 gone_on $F 1 2 3
it_note "n1's journal records for F: $(grep -h " sess_$F\$" "$(node_state 1)/journal" | cut -d' ' -f1-3 | paste -sd'|')"

check "cluster stops cleanly" cluster_stop
it_finish
