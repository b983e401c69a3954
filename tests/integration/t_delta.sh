#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# A small change to an 8 KB session travels as a delta (docs/DESIGN.md "Deltas"),
# and a touch-only request as a tiny message: measured with the per-peer
# bytes_sent of `sessyncd --status --json` on the sending node, while the
# replicas stay byte-equal with equal nanosecond mtimes.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_delta
it_require_daemon

WAIT=${IT_WAIT:-10}

cluster_create 3 && cluster_start || it_abort "cluster did not start"
ok "3-node cluster started"

# peer_stat NODE PEER FIELD: one field of PEER's entry in NODE's
# `--status --json`; empty (and status 1) if the command or the parse fails.
peer_stat() {
	sessync_cli "$1" --status --json 2>/dev/null | python3 -c '
import json, sys
peer, field = sys.argv[1], sys.argv[2]
st = json.load(sys.stdin)
v = [p for p in st["peers"] if p["name"] == peer][0][field]
print(str(v).lower() if isinstance(v, bool) else v)' "$2" "$3"
}

# settled NODE PEER: NODE has nothing pending for PEER.
settled() { [[ $(peer_stat "$1" "$2" pending) == 0 ]]; }

# replicated SID: n2's and n3's copies equal n1's (bytes, mtime ns).
replicated() {
	files_equal "$(node_sess_file 1 "$1")" "$(node_sess_file 2 "$1")" &&
		files_equal "$(node_sess_file 1 "$1")" "$(node_sess_file 3 "$1")"
}

# both_settled: n1 has nothing pending for n2 nor n3 (every ack is in, so
# the counters are final).
both_settled() { settled 1 n2 && settled 1 n3; }

sid=delta0123456789abcdefABCDEF
f1=$(node_sess_file 1 "$sid")

# A deterministic 8000-character string of hex digits (md5 chain), so the
# file is ~8 KB and compresses nowhere near as well as a run of one letter.
check "n1: PHP creates an ~8 KB session" php_session 1 "$sid" '
	$s = ""; for ($i = 0; strlen($s) < 8000; $i++) $s .= md5("blob" . $i);
	$_SESSION["user"] = "alice";
	$_SESSION["counter"] = 1;
	$_SESSION["blob"] = substr($s, 0, 8000);'
size=$(stat -c %s -- "$f1")
if ((size > 8000 && size < 8200)); then ok "the session file is $size bytes"; else fail "the session file is ~8 KB ($size bytes)"; fi
check "it reaches n2 and n3" wait_until "$WAIT" replicated "$sid"
check "n1's status settles (nothing pending)" wait_until "$WAIT" both_settled

b0=$(peer_stat 1 n2 bytes_sent)
f0=$(peer_stat 1 n2 bytes_full)
c0=$(peer_stat 1 n3 bytes_sent)
if [[ $b0 =~ ^[0-9]+$ && $f0 =~ ^[0-9]+$ && $c0 =~ ^[0-9]+$ ]]; then
	ok "status --json of n1 gives bytes_sent/bytes_full for n2 ($b0/$f0) and n3 ($c0)"
else
	fail "status --json of n1 gives bytes_sent/bytes_full (got '$b0' '$f0' '$c0')"
fi
if ((${b0:-0} >= size)); then ok "the creation cost at least the file ($b0 >= $size bytes)"; else fail "the creation cost at least the file (${b0:-?} < $size bytes)"; fi

# One small field changes: the rest of the 8 KB is the same.
check "n1: PHP changes one counter" php_session 1 "$sid" '$_SESSION["counter"]++;'
check "the change reaches n2 and n3 (bytes and mtime ns equal)" wait_until "$WAIT" replicated "$sid"
check "n1's status settles again" wait_until "$WAIT" both_settled
b1=$(peer_stat 1 n2 bytes_sent)
f1b=$(peer_stat 1 n2 bytes_full)
c1=$(peer_stat 1 n3 bytes_sent)
d=$((${b1:-0} - ${b0:-0}))
d3=$((${c1:-0} - ${c0:-0}))
echo "# measured: delta: $d bytes sent for a $size-byte file (to n2; $d3 to n3; whole-file equivalent $((${f1b:-0} - ${f0:-0})))"
if ((d > 0 && d * 4 < size)); then ok "n1 -> n2 sent $d bytes (< 25% of $size)"; else fail "n1 -> n2 sent $d bytes (want 0 < N < 25% of $size)"; fi
if ((d3 > 0 && d3 * 4 < size)); then ok "n1 -> n3 sent $d3 bytes (< 25% of $size)"; else fail "n1 -> n3 sent $d3 bytes (want 0 < N < 25% of $size)"; fi
if ((${f1b:-0} - ${f0:-0} >= size)); then
	ok "bytes_full grew by at least the file size (what a whole-file transfer would have cost)"
else fail "bytes_full grew by at least the file size (grew by $((${f1b:-0} - ${f0:-0})))"; fi
assert_contains "$(php_read 2 "$sid" | tr -d ' \n')" "'counter'=>2," "PHP on n2 reads counter 2"
# php_read on n2 was itself a touch-only request there; let it settle.
check "n2's read (a touch) is back on n1" wait_until "$WAIT" files_equal "$(node_sess_file 2 "$sid")" "$f1"
check "... and n3" wait_until "$WAIT" files_equal "$(node_sess_file 2 "$sid")" "$(node_sess_file 3 "$sid")"
check "n1's status settles again" wait_until "$WAIT" both_settled

# A touch-only request: the content is the same, only the mtime moves.
b2=$(peer_stat 1 n2 bytes_sent)
c2=$(peer_stat 1 n3 bytes_sent)
# No echo (docs/DESIGN.md "PHP's files handler"): n1 applied n2's touch and must not
# push that version back to n2, nor on to n3 (n2 sends it there itself).
assert_eq "$b2/$c2" "$b1/$c1" "n1 sent nothing for the touch it received from n2 (no echo)"
check "n1: PHP touch-only request" php_touch 1 "$sid"
check "the touch reaches n2 and n3 (mtime ns equal)" wait_until "$WAIT" replicated "$sid"
check "n1's status settles again" wait_until "$WAIT" both_settled
b3=$(peer_stat 1 n2 bytes_sent)
t=$((${b3:-0} - ${b2:-0}))
echo "# touch: $t bytes sent for a $size-byte file"
if ((t > 0 && t * 20 < size)); then ok "the touch sent $t bytes (< 5% of $size)"; else fail "the touch sent $t bytes (want 0 < N < 5% of $size)"; fi

full=$(peer_stat 1 n2 bytes_full)
sent=$(peer_stat 1 n2 bytes_sent)
it_note "n1 -> n2 overall: $sent bytes sent, $full whole-file equivalent"
check "cluster stops cleanly" cluster_stop
it_finish
