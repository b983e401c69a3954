#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# `sessyncd -c CONF --full-sync [PEER...]` (docs/DESIGN.md "Catch-up and full
# sync", "Interface"): one line per peer, "NAME: ok, N sent, N failed" or
# "NAME: FAILED, ...: reason"; exit 0 only if every peer confirmed, 1
# otherwise, 2 for a peer name that is not in the config. It works with or
# without the local daemon, and returns only once the peers acknowledged, so
# the files are there when it exits (checked without waiting).
#  a. all daemons up                        -> 0, an ok line per peer
#  b. n1's daemon stopped, sessions created -> 0, they are on n2 and n3
#  c. n3's daemon stopped (its sshd up)     -> 0: n3's --serve applies in
#                                              its place; "n2" alone -> 0
#  d. n2's sshd stopped                     -> 1, n2 FAILED
#  e. unknown peer name                     -> 2
# No reconnect backoff matters here: --full-sync makes its own connections,
# and the only daemon links that must come back (n1 -> n2, n3 after (b)) do
# so from a restarted daemon.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_fullsync
it_require_daemon

WAIT=${IT_WAIT:-15}

cluster_create 3 && cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2
check "n1 -> n3 connected" wait_until 10 peer_connected 1 n3

# full_sync ARGS...: run `--full-sync ARGS` on n1; sets FS_OUT (stdout),
# FS_ERR (stderr), FS_RC and FS_MS (wall time).
full_sync() {
	local t0
	t0=$(now_ms)
	FS_OUT=$(sessync_cli 1 --full-sync "$@" 2>"$T/fs.err")
	FS_RC=$?
	FS_MS=$(($(now_ms) - t0))
	FS_ERR=$(cat "$T/fs.err")
	[[ -n $FS_OUT ]] && printf '%s\n' "$FS_OUT" | sed 's/^/# full-sync: /'
	[[ -n $FS_ERR ]] && printf '%s\n' "$FS_ERR" | tail -n 3 | sed 's/^/# full-sync stderr: /'
	return 0
}

# fs_line NAME: the line of FS_OUT for peer NAME.
fs_line() { printf '%s\n' "$FS_OUT" | grep -E "^$1: " ; }

ok_re() { echo "^$1: ok, [0-9]+ sent, 0 failed\$"; }

# ---------------------------------------------------------------- a
for k in 1 2 3; do
	php_session 1 "fsA$k" '$_SESSION["a"] = '"$k"';' || fail "php create fsA$k"
done
check_converged "(a) 3 sessions replicated by the daemons" "$WAIT" 1 2 3
full_sync
assert_eq "$FS_RC" 0 "(a) all up: exit 0"
assert_eq "$(printf '%s\n' "$FS_OUT" | wc -l)" 2 "(a) one line per peer"
check "(a) n2: ok line" grep -Eq "$(ok_re n2)" <<<"$FS_OUT"
check "(a) n3: ok line" grep -Eq "$(ok_re n3)" <<<"$FS_OUT"
it_note "measured: --full-sync (a) all up, in sync: $FS_MS ms"

# ---------------------------------------------------------------- b
php_session 1 fsGone '$_SESSION["bye"] = 1;' || fail "php create fsGone"
check_converged "(b) fsGone replicated before n1's daemon stops" "$WAIT" 1 2 3
check "(b) n1's daemon stops cleanly" daemon_stop 1
for k in 1 2 3 4 5; do
	php_session 1 "fsB$k" '$_SESSION["b"] = '"$k"'; $_SESSION["pad"] = str_repeat("x", 700);' || fail "php create fsB$k"
done
php_session 1 fsA1 '$_SESSION["a"] = "updated while the daemon was down";' || fail "php update fsA1"
php_destroy 1 fsGone || fail "php destroy fsGone"
full_sync
assert_eq "$FS_RC" 0 "(b) n1's daemon stopped: exit 0"
check "(b) n2: ok line" grep -Eq "$(ok_re n2)" <<<"$FS_OUT"
check "(b) n3: ok line" grep -Eq "$(ok_re n3)" <<<"$FS_OUT"
sent2=$(fs_line n2 | sed -E 's/^n2: ok, ([0-9]+) sent.*/\1/')
if [[ $sent2 =~ ^[0-9]+$ ]] && ((sent2 >= 6)); then ok "(b) n2's line counts the 6 changed sessions ($sent2 sent)"; else fail "(b) n2's line counts the 6 changed sessions ('$sent2' sent)"; fi
all_there=1
for s in fsB1 fsB2 fsB3 fsB4 fsB5 fsA1; do
	for p in 2 3; do
		files_equal "$(node_sess_file 1 $s)" "$(node_sess_file $p $s)" || { all_there=0; it_note "$s missing or different on n$p"; }
	done
done
if ((all_there)); then ok "(b) on exit the 5 new sessions and the update are on n2 and n3 (bytes, mtime ns)"
else fail "(b) on exit the 5 new sessions and the update are on n2 and n3 (bytes, mtime ns)"; fi
it_note "measured: --full-sync (b) without the local daemon, 6 changes: $FS_MS ms"
# fsGone was destroyed (a logout) while n1's daemon was down. Without a
# daemon, --full-sync takes the state lock and infers such deletes from the
# journal exactly as the daemon does at start-up (docs/DESIGN.md "Full
# sync"), so the logout reaches n2 and n3 before the node goes into
# maintenance.
check "(b) on exit the session destroyed while n1's daemon was down is gone on n2 and n3" gone_on fsGone 2 3
check "(b) n1's daemon restarts" daemon_start 1
check "(b) ... and deletes fsGone, destroyed while it was down, on n2 and n3" wait_until "$WAIT" gone_on fsGone 1 2 3
check_converged "(b) n1, n2, n3 converge" "$WAIT" 1 2 3

# ---------------------------------------------------------------- c
check "(c) n3's daemon stops cleanly (its sshd stays up)" daemon_stop 3
php_session 1 fsC1 '$_SESSION["c"] = 1;' || fail "php create fsC1"
full_sync
# No daemon on n3: its --serve applies in the daemon's place, under n3's
# state lock (docs/DESIGN.md "Inbound connections"; t_drain_stopped.sh).
assert_eq "$FS_RC" 0 "(c) n3's daemon down: exit 0 (a stand-in applies there)"
check "(c) n2: ok line" grep -Eq "$(ok_re n2)" <<<"$FS_OUT"
check "(c) n3: ok line" grep -Eq "$(ok_re n3)" <<<"$FS_OUT"
check "(c) fsC1 is on n3, its daemon down" files_equal "$(node_sess_file 1 fsC1)" "$(node_sess_file 3 fsC1)"
it_note "measured: --full-sync (c) one peer's daemon down: $FS_MS ms"
full_sync n2
assert_eq "$FS_RC" 0 "(c) --full-sync n2: exit 0"
assert_eq "$(printf '%s\n' "$FS_OUT" | wc -l)" 1 "(c) --full-sync n2: one line"
check "(c) --full-sync n2: n2 ok" grep -Eq "$(ok_re n2)" <<<"$FS_OUT"
check "(c) fsC1 is on n2" files_equal "$(node_sess_file 1 fsC1)" "$(node_sess_file 2 fsC1)"
it_note "measured: --full-sync (c) n2 only: $FS_MS ms"

# ---------------------------------------------------------------- d
check "(d) n3's daemon is back" daemon_start 3
check "(d) n1 -> n3 reconnects" wait_until 35 peer_connected 1 n3
sshd_stop 2
ok "(d) n2's sshd stopped"
full_sync
assert_eq "$FS_RC" 1 "(d) n2 unreachable: exit 1"
check "(d) n2: FAILED line" grep -Eq '^n2: FAILED, ' <<<"$FS_OUT"
check "(d) n3: ok line" grep -Eq "$(ok_re n3)" <<<"$FS_OUT"
check "(d) fsC1 is on n3 (its daemon was down in (c))" files_equal "$(node_sess_file 1 fsC1)" "$(node_sess_file 3 fsC1)"
it_note "measured: --full-sync (d) one peer unreachable: $FS_MS ms"
full_sync n2
assert_eq "$FS_RC" 1 "(d) --full-sync n2: exit 1"
sshd_start 2 || fail "sshd_start 2"

# ---------------------------------------------------------------- e
full_sync nosuchpeer
assert_eq "$FS_RC" 2 "(e) unknown peer: exit 2"
assert_contains "$FS_ERR" "nosuchpeer" "(e) stderr names the unknown peer"
assert_eq "$FS_OUT" "" "(e) nothing on stdout"
full_sync n2 nosuchpeer
assert_eq "$FS_RC" 2 "(e) a known and an unknown peer: exit 2"

check "cluster stops cleanly" cluster_stop
it_finish
