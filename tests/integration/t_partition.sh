#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# Network partitions between two nodes (docs/DESIGN.md "Versions, conflicts,
# deletes" and "Catch-up and full sync"). A partition is made by stopping a
# node's sshd: its daemon keeps running, but nobody can reach it.
#
#  A. One way (n2's sshd down: n1 cannot push to n2). n1 creates, updates
#     and destroys sessions meanwhile. After the heal everything converges:
#     byte-equal, same mtime to the ns, destroyed sessions gone on n2.
#     Healing: n1's daemon is NOT restarted. The partition is held for
#     3.5 s or so (n1 must stay disconnected for 3 s of it), so n1's
#     reconnect backoff (0.5 s doubling, jittered) is at most 2-4 s when
#     sshd comes back: shorter than the backoff's growth to its 30 s cap.
#     The wait is bounded by that cap anyway, and the reconnect time is
#     printed.
#  B-D. Both ways (both sshds down), three sessions at once; healed by
#     starting both sshds and restarting both daemons (restart resets the
#     backoff, and tombstones then come from state_dir/journal):
#   B. logout after an update elsewhere: n2 updates S at t1, then n1
#      destroys S at t2 > t1 -> S is gone on both and stays gone.
#   C. the reverse: n1 destroys S at t1, then n2 updates S at t2 > t1 ->
#      last writer wins by design: S comes back everywhere with n2's content
#      (asserted, so a change of this behaviour is noticed).
#   D. expiry: S is older than session_lifetime; PHP's GC removes it on n1
#      while the user stays active on n2 (a newer version) -> the expiry
#      tombstone carries S's old version, so S survives with n2's version.
#      S is aged by writing it with an mtime 2 h in the past before the
#      daemons start (the default lifetime, 24 min, stays in force: a small
#      IT_SESSION_LIFETIME would turn the logouts of B and C into expiries
#      whenever a slow machine lets their files age past it).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_partition
it_require_daemon

WAIT=${IT_WAIT:-15}   # seconds for convergence once connected (2-core CI)

cluster_create 2 || it_abort "cluster_create 2"

# D's session, 2 hours old, written before the daemons start (the start-up
# scan pushes it to n2 with its old mtime).
fault_phpish
sidD=partExpire0123456789
old_ns=$(($(date +%s%N) - 7200 * 1000000000))
PYTHONPATH=$T python3 -c '
import sys, phpish
phpish.write(sys.argv[1], phpish.php_string("user", "dora"), int(sys.argv[2]))' \
	"$(node_sess_file 1 $sidD)" "$old_ns" || it_abort "cannot write the aged session"

cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2
check "n2 -> n1 connected" wait_until 10 peer_connected 2 n1
check "the 2 h old session reaches n2 with its old mtime" \
	wait_until "$WAIT" files_equal "$(node_sess_file 1 $sidD)" "$(node_sess_file 2 $sidD)"

# ================================================================ A: one way
for k in 1 2 3; do
	php_session 1 "partUpd$k" '$_SESSION["v"] = "before";' || fail "php create partUpd$k"
	php_session 1 "partDel$k" '$_SESSION["v"] = "doomed";' || fail "php create partDel$k"
done
check "A: 6 sessions replicated to n2 before the partition" wait_until "$WAIT" nodes_equal 1 2

mark_cut=$(log_mark 1)
sshd_stop 2
t_cut=$(now_ms)
check "A: n1 sees its link to n2 go down when n2's sshd stops" wait_until 10 peer_down 1 n2

for k in 1 2 3; do
	php_session 1 "partNew$k" '$_SESSION["v"] = "made during the partition";' || fail "php create partNew$k"
	php_session 1 "partUpd$k" '$_SESSION["v"] = "after"; $_SESSION["k"] = '"$k"';' || fail "php update partUpd$k"
	php_destroy 1 "partDel$k" || fail "php destroy partDel$k"
done
php_session 1 partTmp '$_SESSION["v"] = "short-lived";' || fail "php create partTmp"
php_destroy 1 partTmp || fail "php destroy partTmp"

# Keep the partition up ~3 s: n1 retries and fails a few times, so its
# backoff has grown (to 2-4 s) when n2's sshd comes back.
check "A: n1 stays disconnected from n2 while n2's sshd is down (3 s)" stays_for 3 peer_down 1 n2
attempts=$(log_since 1 "$mark_cut" | grep -c 'peer "n2"')
it_note "n1 logged $attempts line(s) about peer n2 during the partition"
pending=$(peer_stat 1 n2 pending)
if [[ $pending =~ ^[0-9]+$ ]] && ((pending >= 9)); then
	ok "A: n1 holds the changes for n2 (pending $pending)"
else fail "A: n1 holds the changes for n2 (pending '$pending', want >= 9)"; fi
if [[ ! -e $(node_sess_file 2 partNew1) && -e $(node_sess_file 2 partDel1) ]] &&
	! cmp -s "$(node_sess_file 1 partUpd1)" "$(node_sess_file 2 partUpd1)"; then
	ok "A: nothing crossed the partition (n2 still has the old state)"
else fail "A: nothing crossed the partition (n2 still has the old state)"; fi

sshd_start 2 || it_abort "sshd_start 2"
t_heal=$(now_ms)
check "A: n1 reconnects to n2 by itself (backoff, no restart)" wait_until 35 peer_connected 1 n2
t_conn=$(now_ms)
check_converged "A: n2 converges with n1 (names, bytes, mtime ns)" "$WAIT" 1 2
t_conv=$(now_ms)
it_note "measured: partition of $((t_heal - t_cut)) ms healed: reconnect after $((t_conn - t_heal)) ms, converged $((t_conv - t_heal)) ms after sshd came back"
for k in 1 2 3; do
	check "A: partDel$k, destroyed during the partition, is gone on n2" gone_on "partDel$k" 2
done
check "A: the session created and destroyed during the partition never appeared on n2" gone_on partTmp 2
assert_eq "$(php_read 2 partUpd2 | tr -d ' \n')" "array('v'=>'after','k'=>2,)" "A: PHP on n2 reads the update made during the partition"
check "A: n1 has nothing pending for n2" wait_until "$WAIT" peer_settled 1 n2

# ================================================================ B-D: both ways
sidB=partLogout0123456789
sidC=partRevive0123456789
for s in $sidB $sidC; do
	php_session 1 "$s" '$_SESSION["user"] = "bob"; $_SESSION["n"] = 1;' || fail "php create $s"
done
check "B-D: sessions replicated before the partition" wait_until "$WAIT" nodes_equal 1 2

sshd_stop 1
sshd_stop 2
check "B-D: n1 -> n2 down" wait_until 10 peer_down 1 n2
check "B-D: n2 -> n1 down" wait_until 10 peer_down 2 n1

# B: n2 updates (t1), then n1 logs out (t2 > t1).
check "B: n2 updates S (user active there)" php_session 2 $sidB '$_SESSION["n"] = 2;'
t1=$(mtime_ns "$(node_sess_file 2 $sidB)")
check "B: n1 destroys S afterwards (logout)" php_destroy 1 $sidB
check "B: n1 journals a destroy tombstone (T 1) for S" wait_until 5 journal_is 1 $sidB 1
t2=$(awk -v n="sess_$sidB" '$1 == "T" && $2 == 1 && $6 == n { t = $3 } END { print t }' "$(node_state 1)/journal")
if [[ $t2 =~ ^[0-9]+$ ]] && ((t2 > t1)); then
	ok "B: the destroy (t2=$t2) is newer than n2's update (t1=$t1)"
else fail "B: the destroy (t2='$t2') is newer than n2's update (t1=$t1)"; fi

# C: n1 logs out (t1), then n2 updates (t2 > t1).
check "C: n1 destroys S (logout)" php_destroy 1 $sidC
check "C: n1 journals a destroy tombstone (T 1) for S" wait_until 5 journal_is 1 $sidC 1
check "C: n2 updates S afterwards" php_session 2 $sidC '$_SESSION["n"] = 3; $_SESSION["late"] = "yes";'
cp -p -- "$(node_sess_file 2 $sidC)" "$T/C.n2" || fail "C: copy n2's version"
tC1=$(awk -v n="sess_$sidC" '$1 == "T" && $2 == 1 && $6 == n { t = $3 } END { print t }' "$(node_state 1)/journal")
tC2=$(mtime_ns "$T/C.n2")
if [[ $tC1 =~ ^[0-9]+$ ]] && ((tC2 > tC1)); then
	ok "C: n2's update (t2=$tC2) is newer than the destroy (t1=$tC1)"
else fail "C: n2's update (t2=$tC2) is newer than the destroy (t1='$tC1')"; fi

# D: n2 keeps the user active; PHP's GC on n1 expires the old copy.
check "D: n2 updates the 2 h old S (user active there)" php_session 2 $sidD '$_SESSION["user"] = "dora"; $_SESSION["seen"] = 1;'
cp -p -- "$(node_sess_file 2 $sidD)" "$T/D.n2" || fail "D: copy n2's version"
assert_eq "$(php_gc 1 partGcRequest0123456 1440)" 1 "D: PHP's GC on n1 removes exactly one file (S, older than 1440 s)"
check "D: S is gone on n1" test ! -e "$(node_sess_file 1 $sidD)"
check "D: n1 journals an expiry tombstone (T 2) for S, not a destroy" wait_until 5 journal_is 1 $sidD 2

# Heal: sshds back, both daemons restarted (fresh backoff; tombstones from
# the journal).
sshd_start 1 || it_abort "sshd_start 1"
sshd_start 2 || it_abort "sshd_start 2"
t_heal=$(now_ms)
check "B-D: n1's daemon stops cleanly" daemon_stop 1
check "B-D: n2's daemon stops cleanly" daemon_stop 2
daemon_start 1 || it_abort "daemon_start 1"
daemon_start 2 || it_abort "daemon_start 2"
check "B-D: n1 -> n2 connected" wait_until 10 peer_connected 1 n2
check "B-D: n2 -> n1 connected" wait_until 10 peer_connected 2 n1

check_converged "B-D: n1 and n2 converge" "$WAIT" 1 2
it_note "measured: two-way partition healed (restart both daemons) and converged in $(($(now_ms) - t_heal)) ms"
check "B: the logged-out session is gone on n1 and n2" gone_on $sidB 1 2
check "B: ... and stays gone (3 s, both links up)" stays_for 3 gone_on $sidB 1 2
check "B: n1 still holds the destroy tombstone" journal_is 1 $sidB 1
check "B: n2 now holds a destroy tombstone too" journal_is 2 $sidB 1

check "C: last writer wins: S is back on n1 with n2's content and mtime" files_equal "$T/C.n2" "$(node_sess_file 1 $sidC)"
check "C: n2 still has its version" files_equal "$T/C.n2" "$(node_sess_file 2 $sidC)"
assert_eq "$(php_read 1 $sidC | tr -d ' \n')" "array('user'=>'bob','n'=>3,'late'=>'yes',)" "C: PHP on n1 reads n2's update"

check "D: the expired-on-n1 session survives with n2's newer version on n1" files_equal "$T/D.n2" "$(node_sess_file 1 $sidD)"
check "D: ... and on n2" files_equal "$T/D.n2" "$(node_sess_file 2 $sidD)"
check "D: n1's journal holds S as a live file again (T 0)" wait_until 5 journal_is 1 $sidD 0
check "B-D: still converged after the 3 s window" nodes_equal 1 2

check "cluster stops cleanly" cluster_stop
it_finish
