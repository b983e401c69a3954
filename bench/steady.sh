#!/usr/bin/env bash
# bench/steady.sh: steady replication at fixed offered rates from n1 to its 2
# peers (3 nodes on loopback, sshd + sessyncd each, session dirs on tmpfs),
# then the same load through the competitor the issue measured: inotifywait
# + rsync over one multiplexed ssh per peer (bench/comp_sync.py, lsyncd's way
# of working), over the same sshds, and then by lsyncd itself if installed
# (BENCH_LSYNCD=0 skips it). Called by bench/run; figures, not
# pass/fail. Results go to $BENCH_RESULTS as "steady.SYSTEM.RATE KEY=VALUE...".
#
# Load: bench/bench_steady, STEADY_SESSIONS (10,000) PHP-style sessions of
# ~4.8 KB, each write a small change (PHP's way: flock, truncate, write);
# per rate STEADY_SECS seconds (10 at 1,000/s, else 5). Per (write, peer):
# the time until the peer holds that write or a later one of the session,
# whole; p50/p99/max over all; lost = not there 10 s after the last write.
# CPU per update: the growth of every node's cgroup over the window (the
# daemons, relays and sshds; for the competitor inotifywait, the glue, rsync
# at both ends, ssh and sshd) / writes. Bytes per update per peer: TCP
# payload of every connection to a node's sshd, both ways / writes / 2.
# For sessync also the daemon's own counters (frames sent, bytes_sent).
#
# BENCH_PROFILE=perf or =strace (bench/lib_bench.sh prof_start: strace -c
# -f of n1's and n2's daemon, n2's sshd, its connections and relays) around
# sessync's window at the highest rate (or at each of BENCH_PROFILE_RATES); outputs in $BENCH_OUT (default $T,
# kept with KEEP=1).
# shellcheck disable=SC2317  # helpers run through wait_until
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
NS=${STEADY_SESSIONS:-10000}
RATES=${STEADY_RATES:-1000 6000 12000}
GEN=$build/bench/bench_steady

. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=warn
it_init steady >/dev/null
it_require_daemon
. "$here/lib_bench.sh"
trap bench_exit EXIT
export OUT=${BENCH_OUT:-$T}   # prof_start/prof_stop (lib_bench.sh)
[[ -x $GEN ]] || it_abort "$GEN not built (make bench builds it)"

cg_init || echo "   (no writable cgroup: no CPU figures)"
cluster_create 3 >/dev/null || it_abort "cluster setup failed"
for i in 1 2 3; do
	mkdir -p "$T/n$i/comp"
	it_mount_tmpfs "$(node_sessions "$i")" 256m || echo "   (cannot mount tmpfs: not root?)"
	it_mount_tmpfs "$T/n$i/comp" 256m
done
bench_rsync_key || it_abort "rsync key"
sshds_start_cg >/dev/null || it_abort "sshd did not start"
for i in 1 2 3; do daemon_start_cg "$i" >/dev/null || it_abort "daemon n$i did not start"; done

status_json() { sessync_cli "$1" --status --json 2>/dev/null; }
all_connected() {
	local i
	for i in 1 2 3; do
		[[ $(status_json "$i" | grep -o '"connected": true' | wc -l) == 2 ]] || return 1
	done
}
n1_idle() { [[ $(status_json 1 | grep -o '"pending": 0,' | wc -l) == 2 ]]; }
# n1_counters: "frames bytes_sent" summed over n1's peers, then each
# peer's bytes_sent.
n1_counters() {
	status_json 1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(p["sent"] for p in d["peers"]), sum(p["bytes_sent"] for p in d["peers"]),
      *(p["bytes_sent"] for p in d["peers"]))'
}
have_all() { (($(nfiles "$1") >= NS)); }

wait_until 20 all_connected || it_abort "the 3 nodes did not connect"
"$GEN" seed "$(node_sessions 1)" "$NS" || it_abort "seed"
if ! { wait_until 60 have_all "$(node_sessions 2)" && wait_until 60 have_all "$(node_sessions 3)" &&
	wait_until 30 n1_idle; }; then
	it_abort "the $NS sessions did not reach n2 and n3"
fi

echo "== steady replication, $NS PHP-style sessions of ~4.8 KB, small changes, n1 -> 2 peers (bench/steady.sh)"
echo "   columns: offered/achieved writes/s; latency p50/p99/max ms over every (write, peer); lost; CPU per update (all processes of all 3 nodes); bytes per update per peer on the wire"

round=0
# window SYSTEM RATE IDLE_CMD DST...: one rate; prints the row, records it.
window() {
	local sys=$1 rate=$2 idle=$3 secs c0 c1 w0 w1 f0 f1 q0 q1 out prof=""
	shift 3
	secs=${STEADY_SECS:-$((rate <= 1000 ? 10 : 5))}
	round=$((round + 1))
	[[ $sys == sessync && -n ${BENCH_PROFILE:-} && " ${BENCH_PROFILE_RATES:-${RATES##* }} " == *" $rate "* ]] && prof=1
	[[ $sys == sessync ]] && read -r -a f0 <<<"$(n1_counters)" && read -r -a q0 <"/proc/$(daemon_pid 1)/schedstat"
	w0=$(wire_bytes)
	# shellcheck disable=SC2046  # one PID a word
	[[ -n $prof ]] && prof_start "steady.$rate" "$(daemon_pid 1)" "$(daemon_pid 2)" "$(cat "$T/n2/sshd/pid")" $(_it_descendants "$(cat "$T/n2/sshd/pid")")
	c0=$(cg_total_usec)
	out=$("$GEN" run "$(if [[ $sys == sessync ]]; then node_sessions 1; else echo "$T/n1/comp"; fi)" \
		"$NS" "$rate" "$secs" "$((round * 1000000000))" "$@")
	wait_until 15 "$idle"
	c1=$(cg_total_usec)
	[[ -n $prof ]] && prof_stop "steady.$rate"
	w1=$(wire_bytes)
	local -A v=()
	local kv
	for kv in $out; do v[${kv%%=*}]=${kv#*=}; done
	local writes=${v[writes]:-0}
	local cpu bytes extra=""
	cpu=$(awk -v c=$((c1 - c0)) -v n="$writes" 'BEGIN { if (n) printf "%.3f", c / n / 1000; else print "-" }')
	[[ -n $_cg_root ]] || cpu="-"   # no cgroup (not root): no CPU figure
	bytes=$(awk -v b=$((w1 - w0)) -v n="$writes" 'BEGIN { if (n) printf "%.0f", b / n / 2; else print "-" }')
	if [[ $sys == sessync ]]; then
		read -r -a f1 <<<"$(n1_counters)"
		read -r -a q1 <"/proc/$(daemon_pid 1)/schedstat"
		extra=" (daemon: $(awk -v f=$((f1[0] - f0[0])) -v n="$writes" 'BEGIN { printf "%.2f", f / n / 2 }') frames, $(awk -v b=$((f1[1] - f0[1])) -v n="$writes" 'BEGIN { printf "%.0f", b / n / 2 }') B payload per update per peer ($(awk -v a=$((f1[2] - f0[2])) -v b=$((f1[3] - f0[3])) -v n="$writes" 'BEGIN { printf "%.0f / %.0f", a / n, b / n }') to each); n1's daemon ran $(((q1[0] - q0[0]) / 1000000)) ms and waited $(((q1[1] - q0[1]) / 1000000)) ms for a CPU)"
	fi
	printf '   %-8s %6s/%-6s p50 %8s  p99 %8s  max %8s  lost %6s  cpu %s ms  %s B%s\n' "$sys" "$rate" "${v[achieved]:--}" \
		"${v[p50]:--}" "${v[p99]:--}" "${v[max]:--}" "${v[lost]:--}" "$cpu" "$bytes" "$extra"
	((${v[coalesced]:-0} > 0)) && echo "            (${v[coalesced]} of ${v[arrived]:-0} arrivals only through a later write)"
	bench_result "steady.$sys.$rate p50=${v[p50]:--} p99=${v[p99]:--} max=${v[max]:--} lost=${v[lost]:--} writes=$writes achieved=${v[achieved]:--} cpu_ms=$cpu bytes=$bytes"
}

for rate in $RATES; do
	window sessync "$rate" n1_idle "$(node_sessions 2)" "$(node_sessions 3)"
done

# ------------------------------------------------------------ the competitor
# STEADY_COMP=0: sessync's rows only (a before/after of one change).
if [[ ${STEADY_COMP:-1} == 0 ]]; then it_finish >/dev/null; exit 0; fi
for i in 1 2 3; do daemon_stop "$i" >/dev/null; done
"$GEN" seed "$T/n1/comp" "$NS" || it_abort "seed"
declare -A ssh_of
for i in 2 3; do
	ctl=$T/ctl-n$i
	# shellcheck disable=SC2046  # the ssh command is words
	cg_run 1 $(bench_ssh_cmd "$(node_port "$i")") -M -N -f -o ControlPath="$ctl" -o ControlPersist=yes 127.0.0.1 ||
		it_abort "ssh master to n$i"
	mpid=$(ssh -o ControlPath="$ctl" -O check 127.0.0.1 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
	[[ -n $mpid ]] && it_track_pid "$mpid"
	ssh_of[$i]=$(bench_ssh_cmd "$(node_port "$i")" "$ctl")
	cg_run 1 rsync -a -e "${ssh_of[$i]}" "$T/n1/comp/" "127.0.0.1:$T/n$i/comp/" || it_abort "initial rsync to n$i"
done
cg_run 1 python3 "$here/comp_sync.py" "$T/n1/comp" "$T/comp.status" \
	"${ssh_of[2]}:$T/n2/comp" "${ssh_of[3]}:$T/n3/comp" 2>"$T/comp.err" &
comp_pid=$!
it_track_pid "$comp_pid"
sleep 1
comp_last=""
comp_idle() {
	local s
	s=$(cat "$T/comp.status" 2>/dev/null)
	[[ -n $s && $s == "$comp_last" ]] && return 0
	comp_last=$s
	sleep 0.3
	return 1
}
for rate in $RATES; do
	comp_last=""
	window rsync "$rate" comp_idle "$T/n2/comp" "$T/n3/comp"
done
[[ -s $T/comp.err ]] && tail -n 3 "$T/comp.err" | sed 's/^/   comp_sync stderr: /'
_it_stop_tree "$comp_pid" TERM any

# ------------------------------------------------------------ lsyncd, if installed
# The same transfers by lsyncd itself (default.rsync, delay 0: a batch
# starts as soon as the previous one ends), over the same masters.
if command -v lsyncd >/dev/null && ((${BENCH_LSYNCD:-1})); then
	{
		echo "settings { nodaemon = true, logfile = \"$T/lsyncd.log\", insist = true }"
		for i in 2 3; do
			echo "sync { default.rsync, source = \"$T/n1/comp\", target = \"127.0.0.1:$T/n$i/comp\", delay = 0,"
			echo "       rsync = { archive = true, rsh = \"${ssh_of[$i]}\" } }"
		done
	} >"$T/lsyncd.lua"
	cg_run 1 lsyncd "$T/lsyncd.lua" >"$T/lsyncd.out" 2>&1 &
	ls_pid=$!
	it_track_pid "$ls_pid"
	ls_started() { [[ $(grep -c 'Startup of .* finished' "$T/lsyncd.log" 2>/dev/null) -ge 2 ]]; }
	# idle: no rsync child for two looks 0.3 s apart
	ls_quiet=0
	ls_idle() {
		if [[ -z $(ps -o pid= --ppid "$ls_pid" 2>/dev/null) ]]; then
			ls_quiet=$((ls_quiet + 1))
		else
			ls_quiet=0
		fi
		sleep 0.3
		((ls_quiet >= 2))
	}
	if wait_until 60 ls_started; then
		for rate in $RATES; do
			ls_quiet=0
			window lsyncd "$rate" ls_idle "$T/n2/comp" "$T/n3/comp"
		done
	else
		echo "   (lsyncd did not start: $(tail -n 2 "$T/lsyncd.log" "$T/lsyncd.out" 2>/dev/null | tr '\n' ' '))"
	fi
	_it_stop_tree "$ls_pid" TERM any
fi
it_finish >/dev/null
