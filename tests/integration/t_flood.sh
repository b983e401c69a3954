#!/usr/bin/env bash
# A peer key cannot exhaust a node (docs/DESIGN.md "Bounds", "Inbound
# connections"). n2 holds S sessions; n1 is an honest peer pushing to it; n3's
# key is the attacker's (its daemon never runs): a compromised peer, through
# n2's sshd and `sessyncd --serve --from n3`, or a local client straight on
# n2's socket (root here; PHP's user in production). Each flood runs against
# a freshly started n2 (so VmHWM is that flood's own peak):
#   A  INV_REQ flood over ssh with n3's key, never reading the answers;
#   B  the same straight on the socket;
#   C  8 connections that each send most of a 16 MiB frame before any
#      handshake, and 200 silent connections reopened as fast as n2 closes
#      them (more than every slot there was), while n1's link is cut and must
#      reconnect;
#   D  a fast sender: FILE frames, each a newer version, as fast as the
#      socket takes them.
# During each: n2 stays alive, `--status` answers within 2 s, a session
# written on n1 arrives on n2, and n2's peak RSS (VmHWM) stays under the
# bound of DESIGN.md "Bounds" for this test's numbers; after each, one more
# session arrives. `SESSYNCD=/path/to/old/sessyncd` runs it against another
# build (the figures before the change).
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_flood
it_require_daemon
it_require_tags

S=${FLOOD_SESSIONS:-1000}   # sessions on n2: the inventory's size
INV_REQS=4000               # 36 KB of requests: one read on the old daemon
SECS=4                      # each flood's length
PHASES=${FLOOD_PHASES:-A B C D}   # a subset, to measure one flood
phase() { [[ " $PHASES " == *" $1 "* ]]; }
FLOOD=$here/flood.py

IT_LOG_LEVEL=info cluster_create 3 || it_abort "cluster setup failed"
name_len=31   # sess_flood + 21 digits
for ((i = 1; i <= S; i++)); do
	printf 'n|i:%d;' "$i" >"$(node_sessions 2)/$(printf 'sess_flood%021d' "$i")"
done
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"
daemon_start 1 || it_abort "n1's daemon did not start"

# ------------------------------------------------------------------ the bound
# DESIGN.md "Bounds", M_server for P peers and E entries of names of L
# bytes: I = E*(18 + L) + 13*(E/4096 rounded up) + 13, R = 512,
# c0 = 8 KiB + 1 KiB + 1 KiB*P, U = 2*(1 MiB + R) + I,
# cP = 16 MiB + 4 + 64 KiB + 2*U + 64 KiB, M_server = 40*c0 + P*cP
# (+ ~300 bytes per connection).
P=2
inv=$((S * (18 + name_len) + 13 * ((S + 4095) / 4096) + 13))
c0=$((8192 + 1024 + 1024 * P))
U=$((2 * ((1 << 20) + 512) + inv))
cP=$(((16 << 20) + 4 + (64 << 10) + 2 * U + (64 << 10)))
server_kb=$(((40 * c0 + P * cP + (40 + P) * 300) / 1024))
# The fast sender's files also go through the turn's file cache (16 MiB)
# and n2's outbound buffers to its peers (16 MiB + 64 KiB in, 4 MiB out
# each: replicas travel on).
fast_kb=$((server_kb + 16 * 1024 + P * (16 * 1024 + 64 + 4 * 1024)))
it_note "bound for P=$P peers, S=$S sessions: server $server_kb KiB above the daemon's RSS before the flood (inventory $inv B); fast sender $fast_kb KiB"

vm() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
n=0
fresh_n2() {
	daemon_stop 2 >/dev/null 2>&1
	daemon_start 2 || it_abort "n2's daemon did not start"
	wait_until 20 eval '(($(sessync_cli 2 --status --json | grep -o "\"sessions\": [0-9]*" | grep -o "[0-9]*$") >= S))' ||
		it_abort "n2 did not load its $S sessions"
	# n1 -> n2 up (n1 connected to n2 and compared inventories).
	wait_until 20 eval 'sessync_cli 1 --status --json | grep -q "\"name\": \"n2\", \"connected\": true"' ||
		it_abort "n1 did not connect to n2"
	pid2=$(daemon_pid 2)
	sleep 0.3
	rss0=$(vm "$pid2" VmRSS)
}
# status_fast WHAT: --status on n2 answers within 2 s.
status_fast() {
	local t0 rc
	t0=$(now_ms)
	timeout 2 "$SESSYNCD" -c "$(node_conf 2)" --status >/dev/null 2>&1
	rc=$?
	if ((rc == 0)); then ok "$1: n2's --status answers within 2 s ($(($(now_ms) - t0)) ms)"
	else fail "$1: n2's --status answers within 2 s (exit $rc after $(($(now_ms) - t0)) ms)"; fi
}
# honest WHAT: a session written on n1 arrives on n2 within 5 s.
honest() {
	local sid t0
	n=$((n + 1))
	sid=honest$n
	t0=$(now_ms)
	php_session 1 "$sid" '$_SESSION["n"] = '"$n"';' || { fail "$1: PHP on n1"; return; }
	if wait_until 5 files_equal "$(node_sess_file 1 "$sid")" "$(node_sess_file 2 "$sid")"; then
		ok "$1: a session written on n1 arrives on n2 ($(($(now_ms) - t0)) ms)"
	else
		fail "$1: a session written on n1 arrives on n2 within 5 s"
	fi
}
# judge WHAT BOUND_KB: n2 alive, its peak within the bound; the figures.
judge() {
	local hwm rss
	hwm=$(vm "$pid2" VmHWM)
	rss=$(vm "$pid2" VmRSS)
	check "$1: n2's daemon is still alive" daemon_running 2
	it_note "measured: $1: n2 VmRSS before ${rss0} KiB, peak VmHWM ${hwm:-?} KiB (+$((${hwm:-0} - rss0)) KiB), VmRSS after ${rss:-?} KiB; bound +$2 KiB"
	check "$1: n2's peak RSS grew by at most the bound (+$2 KiB)" test "$((${hwm:-999999999} - rss0))" -le "$2"
}
during() {
	sleep 1
	status_fast "$1"
	honest "$1"
	status_fast "$1"
}
log_mark() { log2_start=$(wc -l <"$(node_log 2)"); }
log_grew() {
	local lines=$(($(wc -l <"$(node_log 2)") - log2_start))
	check "$1: n2 logged $lines lines during it (at most 100)" test "$lines" -le 100
}

ssh_n3=(ssh -F /dev/null -T -i "$T/n3/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
	-o UserKnownHostsFile="$T/n3/known_hosts" -o StrictHostKeyChecking=yes -p "$(node_port 2)" "$(id -un)@127.0.0.1")

# ------------------------------------------------------------ A: INV_REQ over ssh
if phase A; then
fresh_n2
log_mark
python3 "$FLOOD" inv-ssh "$SECS" "$INV_REQS" n3 n2 -- "${ssh_n3[@]}" >>"$T/flood.out" 2>&1 &
fpid=$!
it_track_pid "$fpid"
during "A (INV_REQ over ssh)"
wait "$fpid"
check "A: n3's key reached n2's daemon as peer n3" grep -q 'peer "n3": connected to us' "$(node_log 2)"
judge "A (INV_REQ over ssh)" "$server_kb"
honest "A, after"
log_grew "A"
fi

# ------------------------------------------------------------ B: INV_REQ on the socket
if phase B; then
fresh_n2
log_mark
python3 "$FLOOD" inv-sock "$SECS" "$INV_REQS" n3 n2 "$(node_sock 2)" >>"$T/flood.out" 2>&1 &
fpid=$!
it_track_pid "$fpid"
during "B (INV_REQ on the socket)"
wait "$fpid"
judge "B (INV_REQ on the socket)" "$server_kb"
honest "B, after"
log_grew "B"
fi

# ------------------------------------------ C: big frames and idle sockets, no handshake
if phase C; then
fresh_n2
log_mark
python3 "$FLOOD" big "$SECS" 8 $((15 << 20)) "$(node_sock 2)" >>"$T/flood.out" 2>&1 &
fpid=$!
it_track_pid "$fpid"
sleep 1.5   # the big frames in first, then the silent sockets
python3 "$FLOOD" idle $((SECS + 4)) 200 "$(node_sock 2)" >>"$T/flood.out" 2>&1 &
ipid=$!
it_track_pid "$ipid"
sleep 1
# Cut n1's link to n2 (its relay on n2): n1 must get back in during the flood.
# n1's own line, one per connection it makes (n2 limits its lines per peer).
conns0=$(grep -c 'peer "n2": connected, ' "$(node_log 1)")
relay=$(pgrep -f -- "$T/n2/sessync.conf --serve --from n1" | head -n 1)
if [[ -n $relay ]]; then kill "$relay"; else fail "C: n1's relay on n2 not found"; fi
# n1's first retry comes within 0.5 s, the next within 1 s more.
check "C: n1 reconnects to n2 within 3.5 s, during the flood" \
	wait_until 3.5 eval '(($(grep -c "peer \"n2\": connected, " "$(node_log 1)") > conns0))'
during "C (big frames, idle sockets)"
wait "$fpid" "$ipid"
judge "C (big frames, idle sockets)" "$server_kb"
honest "C, after"
log_grew "C"
fi

# ------------------------------------------------------------ D: a fast sender
if phase D; then
fresh_n2
log_mark
python3 "$FLOOD" fast "$SECS" n3 n2 "$(node_sock 2)" sess_fastattack0000000000000000 "$T/fast.ready" >>"$T/flood.out" 2>&1 &
fpid=$!
it_track_pid "$fpid"
wait_until 10 test -e "$T/fast.ready" || fail "D: the fast sender did not start"
during "D (fast sender)"
wait "$fpid"
judge "D (fast sender)" "$fast_kb"
honest "D, after"
log_grew "D"
fi

sed 's/^/# flood.py: /' "$T/flood.out"
it_finish
