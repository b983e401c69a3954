#!/usr/bin/env bash
# Attack (issue 10, the stand-in, docs/DESIGN.md "Inbound connections"): a
# holder of n2's key asks for a drain while n1's daemon is stopped, so n1's
# --serve forks a stand-in that holds n1's state lock. Its log goes to
# stderr, the SSH channel's, which this pusher never reads; each of its
# frames (a name that is not a session's) is logged as a warning, so the
# stand-in soon blocks writing its log and never looks at daemon.lock
# again. n1's daemon, started then, must still take over within its 30 s.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_attack_standin
it_require_daemon

cluster_create 2 || it_abort "cluster setup failed"
daemon_start 1 || it_abort "daemon did not start"
daemon_stop 1   # the state is n1's now (boot id); no daemon runs
python3 "$here/standin_stall.py" "$SESSYNCD" "$(node_conf 1)" n2 n1 20000 50 >"$T/stall.json" &
stall=$!
it_track_pid "$stall"
check "a stand-in holds n1's state" wait_until 10 test -S "$(node_state 1)/serve.sock"
sleep 2
IT_START_TIMEOUT=40 daemon_start 1
check "n1's daemon starts within 40 s though the stand-in's stderr is never read" daemon_running 1
check "and says it was handed over" grep -q "handed over after" "$(node_log 1)"
it_note "daemon log: $(grep -E 'held by|handed over|still held' "$(node_log 1)" | tr '\n' '|')"
kill "$stall" 2>/dev/null; wait "$stall" 2>/dev/null
it_note "stall: $(cat "$T/stall.json" 2>/dev/null)"
it_finish
