#!/usr/bin/env bash
# Attack (issue 10, "Names never seen"): a holder of n2's key sends, for
# 100,000 new names, a FILE (creating the file: new files take nothing from
# the budget) and then a DELETE of the same name (a name n1 now HAS: no
# budget, no heap). The disk stays empty, so the space reserve never bites,
# and each pair leaves a tombstone kept tombstone_ttl (24 h): the bound of
# 32,768 tombstones for names never seen, and the per-peer budget, are
# bypassed. The tombstones n1 keeps from that peer must stay within the
# bound, as a flood of DELETEs alone does (t_unknown_flood.sh).
# Measured on main: 100,000 tombstones in ~4 s, journal +23 MB, RSS +27 MB
# (~25,000 pairs a second: the node runs out of memory in minutes).
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_attack_churn
it_require_daemon

cluster_create 2 || it_abort "cluster setup failed"
node_conf_set 1 log_level info
it_mount_tmpfs "$(node_sessions 1)" 64m || it_abort "cannot mount a tmpfs"
sshd_start 1 || it_abort "sshd did not start"
daemon_start 1 || it_abort "daemon did not start"   # n2 stays down: its key is the attacker's
json1() { sessync_cli 1 --status --json; }
field() { json1 | python3 -c "import json, sys; o = json.load(sys.stdin); print($1)"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$(daemon_pid 1)/status"; }

N=${N:-100000}
rss0=$(rss_kb)
j0=$(stat -c %s "$(node_state 1)/journal")
start=$(now_ms)
python3 "$here/attack_peer.py" "$(node_sock 1)" n2 n1 churn "$N" >"$T/churn.json" || fail "the attacker failed"
secs=$(( ($(now_ms) - start + 999) / 1000 ))
it_note "churn: $(cat "$T/churn.json") in ~${secs} s"
sleep 1
tombs=$(field 'o["tombstones"]')
j1=$(stat -c %s "$(node_state 1)/journal")
rss1=$(rss_kb)
it_note "n1: $tombs tombstones, $(ls "$(node_sessions 1)" | wc -l) files; journal ${j0} -> ${j1} bytes; RSS ${rss0} -> ${rss1} kB"
# The bound of "Names never seen": 32,768, whatever the order of frames.
check "tombstones one peer key leaves stay within the bound ($tombs <= 32768 + 10)" test "$tombs" -le $((32768 + 10))
check "the journal grew by less than 10 MB" test $((j1 - j0)) -lt 10000000
check "n1 still answers --status" test -n "$tombs"
it_finish
