#!/usr/bin/env bash
# Attack (issue 10, docs/DESIGN.md "Bounds": "log lines a client can cause:
# one per 10 s per kind"): a holder of n2's key sends 100,000 FILEs whose
# names are not session names. Each is refused (REJECT); on main each is
# also one warning in n1's log (100,000 lines, ~14 MB, in a second or two:
# journald drops the honest lines with them once its rate limit bites).
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_attack_logspam
it_require_daemon

cluster_create 2 || it_abort "cluster setup failed"
sshd_start 1 || it_abort "sshd did not start"
daemon_start 1 || it_abort "daemon did not start"   # n2's key is the attacker's
l0=$(wc -l <"$(node_log 1)")
python3 "$here/attack_peer.py" "$(node_sock 1)" n2 n1 badnames 100000 >"$T/bad.json" || fail "the attacker failed"
sleep 1
l1=$(wc -l <"$(node_log 1)")
it_note "badnames: $(cat "$T/bad.json"); n1's log +$((l1 - l0)) lines"
check "every one was refused" grep -q '"file:reject": 100000' "$T/bad.json"
check "n1's log grew by at most 100 lines ($((l1 - l0)))" test $((l1 - l0)) -le 100
it_finish
