#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# SIGHUP reload (docs/DESIGN.md "Reload"): a fourth node joins a running
# cluster of three while PHP writes on every node. Its key is already in
# every authorized_keys (step 1 of adding a node); its daemon starts with
# all three as peers and is refused by them until each of the three gets the
# new [peer n4] and a SIGHUP. Then: every session, written before or during
# the reload, is on all four nodes; the three old nodes' connections to
# each other were never dropped; n4's writes reach everyone. An invalid
# config keeps the old one running (every error logged as FILE:LINE); a key
# read at start only is named and keeps its value; a live key (log_level)
# takes effect; a removed peer is dropped with its connection.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_reload
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-20}
N=4
PRE=198          # sessions on n1..n3 before n4 exists (a third each)
WRITES=60        # per writer, one every ~50 ms, across the reloads

cluster_create $N || it_abort "cluster_create $N"

# n1..n3 do not know n4 yet: drop its [peer n4] section from their config.
without_n4() {
	awk '/^\[peer n4\]$/ { skip = 1; next } /^\[/ { skip = 0 } !skip' "$1" >"$1.new" && mv -f "$1.new" "$1"
}
for i in 1 2 3; do
	cp "$(node_conf "$i")" "$T/n$i/with-n4.conf"
	without_n4 "$(node_conf "$i")"
done
for i in 1 2 3 4; do sshd_start "$i" || it_abort "sshd n$i"; done
for i in 1 2 3; do daemon_start "$i" || it_abort "daemon n$i"; done
ok "3-node cluster started"

for i in 1 2 3; do
	_it_php "$i" -r '
		for ($k = 0; $k < (int)$argv[2]; $k++) {
			session_id(sprintf("pre%sx%03d", $argv[1], $k));
			session_start(); $_SESSION["v"] = "pre-$k"; session_write_close();
		}' -- "$i" $((PRE / 3)) || it_abort "pre-writes on n$i"
done

# peer_connects I J: how many times node I's connection to J came up.
peer_connects() { grep -c "peer \"n$2\": connected," "$(node_log "$1")"; }
pairs_before=()
for i in 1 2 3; do for j in 1 2 3; do ((i != j)) && pairs_before+=("$i$j:$(peer_connects "$i" "$j")"); done; done

pre_sids=()
for i in 1 2 3; do for ((k = 0; k < PRE / 3; k++)); do pre_sids+=("$(printf 'pre%sx%03d' "$i" "$k")"); done; done
all_present_3() {
	local sid i
	for sid in "${pre_sids[@]}"; do
		for i in 2 3; do files_equal "$(node_sess_file 1 "$sid")" "$(node_sess_file "$i" "$sid")" || return 1; done
	done
}
wait_until "$WAIT" all_present_3 || it_abort "pre-writes did not replicate among n1..n3"
ok "$PRE sessions on n1..n3 before n4 exists"

daemon_start 4 || it_abort "daemon n4"
# n4 is refused by all three: it is not their peer yet.
refused() { grep -q 'is not a peer' "$(node_log 1)" 2>/dev/null || grep -q 'not a peer' "$T/n4/daemon.log"; }
wait_until "$WAIT" refused
check "n4's connections are refused before the reload" refused

# Writers on n1..n3 for the whole reload, each its own sessions.
for i in 1 2 3; do
	_it_php "$i" -r '
		for ($k = 0; $k < (int)$argv[2]; $k++) {
			session_id(sprintf("dur%sx%03d", $argv[1], $k));
			session_start(); $_SESSION["v"] = "during-$k"; session_write_close();
			usleep(50000);
		}' -- "$i" "$WRITES" >"$T/writer$i.log" 2>&1 &
	writer[i]=$!
	it_track_pid "$!"
done
sleep 0.5
t0=$(now_ms)
for i in 1 2 3; do
	cp "$T/n$i/with-n4.conf" "$(node_conf "$i")"
	kill -HUP "$(daemon_pid "$i")"
	sleep 0.3
done
for i in 1 2 3; do wait "${writer[i]}" || it_abort "writer on n$i failed"; done
tw=$(now_ms)

dur_sids=()
for i in 1 2 3; do for ((k = 0; k < WRITES; k++)); do dur_sids+=("$(printf 'dur%sx%03d' "$i" "$k")"); done; done
# dir_digest I: every session's name, mtime (ns) and bytes on node I.
dir_digest() {
	(cd "$(node_sessions "$1")" && find . -type f -printf '%f %T@\n' | sort && md5sum -- * | sort)
}
on_all_from() {   # the four directories are equal, and hold every session written on n1..n3
	local d1 i
	d1=$(dir_digest 1)
	[[ $(grep -c ' [0-9]*\.[0-9]*$' <<<"$d1") == $((PRE + 3 * WRITES)) ]] || return 1
	for ((i = 2; i <= N; i++)); do [[ $(dir_digest "$i") == "$d1" ]] || return 1; done
}
wait_until "$WAIT" on_all_from
t1=$(now_ms)
check "all $((PRE + 3 * WRITES)) sessions (written before and during the reloads) on all 4 nodes" on_all_from
it_note "reload figures: $((3 * WRITES)) writes over $((tw - t0)) ms across the reloads, 0 lost; all $((PRE + 3 * WRITES)) sessions on all 4 nodes $((t1 - tw)) ms after the last write"
for i in 1 2 3; do
	check "n$i logged the reload (1 added, 2 kept)" grep -q "reload of .*: 3 peer(s) (1 added, 0 removed, 0 reconnected, 2 kept)" "$(node_log "$i")"
done

kept=1
for p in "${pairs_before[@]}"; do
	ij=${p%%:*}
	[[ $(peer_connects "${ij:0:1}" "${ij:1:1}") == "${p#*:}" ]] || { kept=0; it_note "n${ij:0:1} -> n${ij:1:1} reconnected"; }
done
check "no connection among n1..n3 was dropped by the reloads" test $kept = 1
check "no inbound connection among n1..n3 was replaced" not grep -q "a new connection replaces" "$(node_log 1)" "$(node_log 2)" "$(node_log 3)"

php_session 4 from4 '$_SESSION["v"] = "n4";' || it_abort "write on n4"
from4_everywhere() {
	local i
	for i in 1 2 3; do files_equal "$(node_sess_file 4 from4)" "$(node_sess_file "$i" from4)" || return 1; done
}
wait_until "$WAIT" from4_everywhere
check "a write on n4 reaches n1..n3" from4_everywhere

# An invalid config: nothing changes, every error is logged with its line.
cp "$(node_conf 1)" "$T/n1/good.conf"
printf 'bogus_key = 1\n[peer n9]\nport = 99999\n' >>"$(node_conf 1)"
kill -HUP "$(daemon_pid 1)"
bad_logged() { grep -q "reload of .* failed (invalid); still running" "$(node_log 1)"; }
wait_until 5 bad_logged
check "an invalid config is refused, the old one keeps running" bad_logged
check "the error names FILE:LINE" grep -q "reload: $(node_conf 1):[0-9]*: port:" "$(node_log 1)"
check "every error is logged, not only the first" grep -q "reload: $(node_conf 1):[0-9]*: host:" "$(node_log 1)"
php_session 1 afterbad '$_SESSION["v"] = 1;' || it_abort "write after bad reload"
afterbad_everywhere() {
	local i
	for i in 2 3 4; do files_equal "$(node_sess_file 1 afterbad)" "$(node_sess_file "$i" afterbad)" || return 1; done
}
wait_until "$WAIT" afterbad_everywhere
check "after the refused reload n1 still replicates to all its peers" afterbad_everywhere
cp "$T/n1/good.conf" "$(node_conf 1)"

# A key read at start only is named and keeps its value; a live one applies.
node_conf_set 2 session_prefix other_
node_conf_set 2 log_level warn
kill -HUP "$(daemon_pid 2)"
prefix_named() { grep -q "reload: changed, but read at start only .*: session_prefix" "$(node_log 2)"; }
wait_until 5 prefix_named
check "session_prefix is named as read at start only" prefix_named
check "log_level is reported as changed live" grep -q "reload of .*changed: log_level" "$(node_log 2)"
php_session 2 stillsess '$_SESSION["v"] = 2;' || it_abort "write on n2"
still_everywhere() {
	local i
	for i in 1 3 4; do files_equal "$(node_sess_file 2 stillsess)" "$(node_sess_file "$i" stillsess)" || return 1; done
}
wait_until "$WAIT" still_everywhere
check "n2 still replicates sess_ files (the old prefix stays)" still_everywhere
lines=$(wc -l <"$(node_log 2)")
php_session 2 quiet '$_SESSION["v"] = 3;' || it_abort "write on n2"
sleep 1
check "log_level warn took effect: no info lines after the reload" \
	not bash -c "tail -n +$((lines + 1)) '$(node_log 2)' | grep -q ' info: '"

# A removed peer is dropped, with its connection to us.
without_n4 "$(node_conf 3)"
kill -HUP "$(daemon_pid 3)"
removed() { grep -q 'reload: peer "n4" removed' "$(node_log 3)"; }
wait_until 5 removed
check "n3 dropped n4 from its peers" removed
status_peers() { sessync_cli 3 --status --json | grep -o '"name": *"n[0-9]"' | sort | tr '\n' ' '; }
check "n3's status lists n1 and n2 only" test "$(status_peers)" = "$(printf '"name": "n1"\n"name": "n2"\n' | sort | tr '\n' ' ')"

cluster_stop || fail "a daemon did not stop cleanly"
it_finish
