#!/usr/bin/env bash
# A logout is never undone by clock skew (docs/DESIGN.md "Destroy and
# expiry", "Clocks and logouts"). n2 runs 60 s fast (within what receivers
# accept: 5 min + clock_skew_warn): its daemon and its PHP writer run under
# libfaketime, and its session files carry its fast clock's mtimes (what a
# fast kernel clock writes). n2 writes a session, it replicates to n1, the
# user logs out on n1 (whose clock is 60 s behind that version). The destroy
# must beat the version it deleted: after both converge, after a periodic
# catch-up, and after n2's daemon restarts, the session is gone everywhere.
# Before the fix the destroy was stamped with n1's clock, n2 answered it
# "stale" and its copy came back to n1 at the next catch-up.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_skew_logout
it_require_daemon
command -v faketime >/dev/null || it_abort "faketime is not installed (make check installs it)"

SKEW=60
cluster_create 2 || it_abort "cluster setup failed"
for i in 1 2; do node_conf_set "$i" resync_interval 2s; done
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"

# n2's daemon, +SKEW s on CLOCK_REALTIME only (its timers stay true, stat()
# reports the true file times as the kernel keeps them).
fast_daemon_start() {
	echo "=== it: $(date +%T.%3N) fast daemon_start n2" >>"$(node_log 2)"
	NO_FAKE_STAT=1 FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "+${SKEW}s" \
		"$SESSYNCD" -c "$(node_conf 2)" </dev/null >>"$(node_log 2)" 2>&1 &
	echo $! >"$(node_dir 2)/daemon.pid"
	it_track_pid "$!"
	wait_until 10 "$SESSYNCD" -c "$(node_conf 2)" --status >/dev/null 2>&1
}
# A PHP request on n2 under the same fast clock. The kernel stamps a write
# with the true time; a node whose clock runs fast stamps it with its own,
# so the request sets its file's mtime to its (fast) now, as that kernel
# would have.
mkdir -p "$T/fastbin"
printf '#!/bin/sh\nFAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 exec faketime -f +%ss %s "$@"\n' \
	"$SKEW" "$(command -v php)" >"$T/fastbin/php"
chmod +x "$T/fastbin/php"
fast_php_session() {
	PATH=$T/fastbin:$PATH _it_php 2 -r '
		session_id($argv[1]);
		if (!session_start()) exit(1);
		eval($argv[2]);
		if (!session_write_close()) exit(1);
		if (!touch(session_save_path() . "/sess_" . $argv[1], time())) exit(1);' -- "$1" "$2"
}

fast_daemon_start || it_abort "n2's daemon did not start"
daemon_start 1 || it_abort "n1's daemon did not start"

# Not vacuous: faketime must reach the daemon, and the session's version
# must really be ahead of n1's clock.
check "n1 measures n2's clock ~${SKEW} s ahead" \
  wait_until 10 grep -Eq "peer \"n2\": clock differs from ours by (59|60|61)[0-9]{3} ms" "$(node_log 1)"

sid=skewlogout1
f1=$(node_sess_file 1 $sid)
f2=$(node_sess_file 2 $sid)
fast_php_session $sid '$_SESSION["user"] = "alice";' || it_abort "PHP on n2 failed"
check "the fast node's session replicated to n1" wait_until 10 files_equal "$f2" "$f1"
ahead=$(( ($(mtime_ns "$f1") / 1000000 - $(now_ms)) / 1000 ))
it_note "n1 holds a version dated ${ahead} s ahead of its clock"
check "that version is ~${SKEW} s ahead of n1's clock" test "$ahead" -ge $((SKEW - 10))

php_destroy 1 $sid || it_abort "session_destroy on n1 failed"
check "logged out on n1" not test -e "$f1"
check "the logout reaches the fast node" wait_until 10 not test -e "$f2"
# The destroy is stamped after the version it deleted (journal:
# "T <kind> <mtime_ns> <hash> <made_ns> <name>").
stamp=$(awk -v n="sess_$sid" '$1 == "T" && $6 == n { k = $2; m = $3 } END { if (k == 1) print m }' \
	"$(node_state 1)/journal")
it_note "n1's destroy is stamped ${stamp:-?}"
check "n1's destroy is stamped after the deleted version" test "${stamp:-0}" -gt "$(( $(now_ms) * 1000000 + (SKEW - 10) * 1000000000 ))"

# Periodic catch-up (resync_interval 2 s) in both directions, twice over.
sleep 5
check "still logged out on n1 after catch-up" not test -e "$f1"
check "still logged out on n2 after catch-up" not test -e "$f2"
check "no conflict refused the logout on n2" not grep -q "refused DELETE, this node holds a newer version" "$(node_log 2)"

# The fast node's daemon restarts (its journal is reloaded, catch-up runs
# again both ways at connect).
mark1=$(wc -l <"$(node_log 1)")
daemon_stop 2 >/dev/null
fast_daemon_start || it_abort "n2's daemon did not restart"
since1() { tail -n +"$mark1" "$(node_log 1)" | grep -q "$1"; }
check "n1 reconnected to the restarted n2" wait_until 15 since1 'peer "n2": connected,'
sleep 5
check "still logged out on n1 after n2's restart" not test -e "$f1"
check "still logged out on n2 after its restart" not test -e "$f2"

# A new login on the fast node still replicates (the skew is accepted).
fast_php_session skewlogout2 '$_SESSION["user"] = "bob";' || it_abort "PHP on n2 failed"
check "a new session on the fast node still replicates" \
  wait_until 10 files_equal "$(node_sess_file 2 skewlogout2)" "$(node_sess_file 1 skewlogout2)"
it_finish
