#!/usr/bin/env bash
# Attack (issue 10, "Names never seen"): a holder of n3's key sends 33,000
# DELETEs for names never seen, each stamped 290 s ahead of n1's clock (inside
# the accepted 5 min + clock_skew_warn). They fill the heap (the burst is
# 32,768) and push the watermark to now + 290 s: every new session of the
# honest n2 is then refused by n1 as "stale" (an expiry of its own version),
# n2 records n1 as having deleted it and stops sending it. One more such
# DELETE, any time later, evicts one more and lifts the mark again, so
# the 5 minutes of DESIGN.md are as long as the attacker likes, at one frame
# per few minutes. Honest new sessions must still reach n1.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_attack_mark
it_require_daemon

cluster_create 3 || it_abort "cluster setup failed"
for i in 1 2; do node_conf_set "$i" log_level info; done
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"
daemon_start 1 && daemon_start 2 || it_abort "daemons did not start"   # n3's key is the attacker's
field() { sessync_cli 1 --status --json | python3 -c "import json, sys; o = json.load(sys.stdin); print($1)"; }

php_session 2 before '$_SESSION["n"] = 1;' || it_abort "PHP on n2 failed"
check "an honest session replicates n2 -> n1" wait_until 10 files_equal "$(node_sess_file 2 before)" "$(node_sess_file 1 before)"
python3 "$here/attack_peer.py" "$(node_sock 1)" n3 n1 mark 33000 290 >"$T/mark.json" || fail "the attacker failed"
it_note "mark: $(cat "$T/mark.json"); n1 forgot $(field 'o["unseen_forgotten"]')"
php_session 2 after '$_SESSION["n"] = 2;' || fail "PHP on n2 failed"
check "an honest new session still reaches n1" wait_until 15 files_equal "$(node_sess_file 2 after)" "$(node_sess_file 1 after)"
it_note "n2's conflicts with n1: $(sessync_cli 2 --status --json | python3 -c 'import json, sys; print([p.get("conflicts") for p in json.load(sys.stdin)["peers"]])')"
it_finish
