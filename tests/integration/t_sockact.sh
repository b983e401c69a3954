#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# Socket activation (docs/DESIGN.md "The socket", "Maintenance"): n2's socket
# is held by a launcher that does what systemd does for conf/sessyncd.socket
# (tests/integration/sockact.py: binds it, and starts the daemon with it as
# fd 3, LISTEN_FDS=1, LISTEN_PID, when a connection is pending and no daemon
# runs; Accept=no), so a drain into n2 while its daemon is stopped or
# restarting starts the daemon instead of failing.
#  a. the first connection (a --status) starts n2's daemon, which says it
#     took the socket from systemd; n1's daemon connects to it.
#  b. n2's daemon stopped (SIGTERM: exit 0), n1's too; the socket file is
#     not unlinked (same inode). `--full-sync n2` on n1, through n2's real
#     sshd and `--serve`, starts n2's daemon and exits 0 with every session
#     on n2; no stand-in ran.
#  c. n2's daemon killed (-9, a crash): the next drain starts it again and
#     exits 0.
#  d. wrong sockets are refused with a clear line, exit 1: a TCP socket, a
#     unix socket bound to another path, LISTEN_FDS=2; LISTEN_PID of another
#     process is not ours: the daemon binds the socket itself, and removes
#     it at exit.
#  e. systemd's own systemd-socket-activate (LISTEN_FDNAMES too) starts the
#     daemon on the first connection; the socket file outlives the daemon.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_sockact
it_require_daemon

LAUNCH="$IT_LIB_DIR/sockact.py"
cluster_create 2 || it_abort "cluster not created"
{ sshd_start 1 && sshd_start 2; } || it_abort "sshd did not start"
daemon_start 1 || it_abort "n1's daemon did not start"
fault_phpish
SOCK2=$(node_sock 2)

# launcher_start ARGS...: the launcher for n2's socket, output to n2's
# daemon.log; LPID. Waits for the socket file.
launcher_start() {
	python3 "$LAUNCH" --pidfile "$(node_dir 2)/daemon.pid" "$@" "$SOCK2" -- "$SESSYNCD" -c "$(node_conf 2)" \
		</dev/null >>"$(node_log 2)" 2>&1 &
	LPID=$!
	it_track_pid "$LPID"
	[[ " $* " == *" --tcp "* ]] || wait_until 5 test -S "$SOCK2"
}

full_sync() {
	local i=$1 t0
	shift
	t0=$(now_ms)
	FS_OUT=$(sessync_cli "$i" --full-sync "$@" 2>>"$T/fs$i.err")
	FS_RC=$?
	FS_MS=$(($(now_ms) - t0))
	printf '%s\n' "$FS_OUT" | sed "s/^/# n$i full-sync: /"
}

make_sessions() {
	python3 - "$(node_sessions "$1")" "$2" "$3" "$T" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[4])
import phpish
d, pre, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    phpish.write(os.path.join(d, "sess_%s%05d" % (pre, i)), phpish.php_string("v", ("%s%05d;" % (pre, i)) * 40))
PY
}

# all_on_2 PREFIX: every sess_PREFIX* of n1 is on n2, same bytes and mtime.
all_on_2() {
	python3 - "$(node_sessions 1)" "$(node_sessions 2)" "sess_$1" <<'PY'
import os, sys
a, b, pre = sys.argv[1], sys.argv[2], sys.argv[3]
na = sorted(n for n in os.listdir(a) if n.startswith(pre))
if not na or na != sorted(n for n in os.listdir(b) if n.startswith(pre)):
    sys.exit(1)
for n in na:
    sa, sb = os.stat(os.path.join(a, n)), os.stat(os.path.join(b, n))
    if sa.st_mtime_ns != sb.st_mtime_ns or open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read():
        sys.exit(1)
PY
}

status_2() { sessync_cli 2 --status >/dev/null; }
starts() { grep -c 'sockact.py: started' "$(node_log 2)"; }
inode() { stat -c %i "$SOCK2" 2>/dev/null; }

# ---------------------------------------------------------------- a
launcher_start || it_abort "the launcher did not bind $SOCK2"
check "(a) no daemon runs on n2 before a connection" not test -e "$(node_dir 2)/daemon.pid"
ino=$(inode)
check "(a) --status on n2 starts its daemon and is answered" wait_until 10 status_2
assert_eq "$(starts)" 1 "(a) one start"
check "(a) the daemon says it took the socket from systemd" \
	grep -q "socket \"$SOCK2\": passed by systemd (socket activation)" "$(node_log 2)"
check "(a) n1 -> n2 connected" wait_until 15 peer_connected 1 n2

# ---------------------------------------------------------------- b
check "(b) n2's daemon stops" daemon_stop 2
check "(b) ... exit status 0" wait_until 5 grep -q 'ended, status 0$' "$(node_log 2)"
assert_eq "$(inode)" "$ino" "(b) the socket file is still systemd's: not unlinked at the daemon's exit"
check "(b) n1's daemon stops" daemon_stop 1
make_sessions 1 kA 300 || fail "(b) create 300 sessions on n1"
full_sync 1 n2
assert_eq "$FS_RC" 0 "(b) --full-sync n2 into n2's stopped daemon: exit 0"
check "(b) n2: ok line" grep -Eq '^n2: ok, [0-9]+ sent, 0 failed$' <<<"$FS_OUT"
it_note "measured: drain of 300 sessions into a stopped, socket-activated daemon: $FS_MS ms"
check "(b) on exit all 300 sessions are on n2 (bytes, mtime ns)" all_on_2 kA
assert_eq "$(starts)" 2 "(b) the drain's connection started n2's daemon"
check "(b) ... which runs" daemon_running 2
check "(b) no stand-in ran (the socket always answered)" not grep -q 'stand-in' "$T/fs1.err" "$(node_dir 2)/sshd/log"
check "(b) no stand-in socket" not test -e "$(node_state 2)/serve.sock"

# ---------------------------------------------------------------- c
old=$(daemon_pid 2)
daemon_kill9 2
check "(c) n2's daemon is gone (kill -9)" wait_until 5 not _it_alive "$old"
make_sessions 1 kC 200 || fail "(c) create 200 sessions on n1"
full_sync 1 n2
assert_eq "$FS_RC" 0 "(c) --full-sync n2 into n2's crashed daemon: exit 0"
check "(c) on exit all 200 sessions are on n2" all_on_2 kC
assert_eq "$(starts)" 3 "(c) the drain started n2's daemon again"
check "(c) n2's daemon stops" daemon_stop 2
_it_stop_tree "$LPID" TERM any
check "(c) the launcher is gone" wait_until 5 not _it_alive "$LPID"

# ---------------------------------------------------------------- d
exits_1() { grep -c 'ended, status 1$' "$(node_log 2)"; }
more_exits_1() { (($(exits_1) > $1)); }

# refused WHY ARGS...: the launcher with ARGS; the first connection starts the
# daemon, which must exit 1 saying WHY.
refused() {
	local why=$1 n0
	shift
	n0=$(exits_1)
	launcher_start "$@" --now
	check "(d) $* : the daemon exits 1" wait_until 15 more_exits_1 "$n0"
	check "(d) $* : it says why" grep -q "$why" "$(node_log 2)"
	_it_stop_tree "$LPID" TERM any
	rm -f "$SOCK2" "$SOCK2.elsewhere"
}
env_daemon_start() { LISTEN_PID=1 LISTEN_FDS=1 daemon_start 2; }
refused "(fd 3) is not a unix stream socket; sessyncd.socket needs ListenStream=$SOCK2" --tcp
refused "(fd 3) is bound to \"$SOCK2.elsewhere\", not to the configured socket" --elsewhere
refused "systemd passed 2 sockets (LISTEN_FDS); sessyncd takes exactly one" --fds 2
check "(d) LISTEN_PID of another process: the daemon binds its socket itself" \
	env_daemon_start
pid=$(daemon_pid 2)
check "(d) ... and did not take fd 3 as systemd's" not grep -q 'passed by systemd' <(sed -n '/LISTEN_PID=1/,$p' "$(node_log 2)")
check "(d) ... and removes its own socket at exit" bash -c "kill -TERM $pid; for i in \$(seq 100); do [[ -e '$SOCK2' ]] || exit 0; sleep 0.05; done; exit 1"
rm -f "$(node_dir 2)/daemon.pid"

# ---------------------------------------------------------------- e
if command -v systemd-socket-activate >/dev/null; then
	systemd-socket-activate -l "$SOCK2" "$SESSYNCD" -c "$(node_conf 2)" </dev/null >>"$(node_log 2)" 2>&1 &
	spid=$!
	it_track_pid "$spid"
	check "(e) systemd-socket-activate listens" wait_until 5 test -S "$SOCK2"
	ino=$(inode)
	check "(e) the first connection starts the daemon (--status answered)" wait_until 15 status_2
	check "(e) it took the socket from systemd" test "$(grep -c 'passed by systemd' "$(node_log 2)")" -ge 4
	_it_stop_tree "$spid" TERM any
	assert_eq "$(inode)" "$ino" "(e) the socket file outlives the daemon"
else
	fail "(e) systemd-socket-activate is missing (package systemd, tests/deps)"
fi

it_finish
