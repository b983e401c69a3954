#!/usr/bin/env bash
# A full mesh of N nodes, one network namespace per node (each its own
# address 10.99.0.I/24 on a bridge, its own sshd on port 22, its own
# sessyncd: every node a peer of every other), under a fixed total write rate
# spread over all nodes (bench_mesh: PHP-style writes, each to a session of
# the writing node's own). Per node: CPU (utime+stime of the daemon, sshd and
# everything sshd forked for inbound connections: the per-connection sshd
# processes and the `--serve` relays, over the window = cores used), RSS
# (sum of VmRSS) and PSS, process count; and the time from a write until all
# N-1 other nodes hold its bytes.
#
# usage: bench/mesh.sh [N...]    (default: $BENCH_MESH_SIZES, "2 4 8 16")
# knobs: BENCH_MESH_RATE (total writes/s, 1000), BENCH_MESH_SECS (20),
#        BENCH_MESH_SESSIONS (per node, 200), BENCH_MESH_SIZE (bytes, 1024).
# Needs root (network namespaces, tmpfs). Each N runs in its own process
# (bench/mesh.sh --one N) with its own $T, so one size's failure leaves the
# next one clean; every process is stopped by PID and the namespaces and
# mounts are removed on exit, Ctrl-C included.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
RATE=${BENCH_MESH_RATE:-1000}
SECS=${BENCH_MESH_SECS:-20}
SESS=${BENCH_MESH_SESSIONS:-200}
SIZE=${BENCH_MESH_SIZE:-1024}

if [[ ${1:-} != --one ]]; then
	sizes=${*:-${BENCH_MESH_SIZES:-2 4 8 16}}
	if ((EUID != 0)); then
		echo "   (mesh: skipped, needs root for network namespaces)"
		exit 0
	fi
	echo "== mesh: N nodes, each a peer of every other, $RATE writes/s in total over all nodes, ${SIZE}-byte sessions, ${SECS} s"
	echo "   per node: cores used (daemon + sshd + its children), RSS and PSS (MB), processes; propagation: write -> all N-1 others hold it (ms)"
	printf '   %3s %7s %13s %11s %11s %6s %7s %25s %8s %5s\n' \
		N 'w/s' 'cpu/node(max)' 'RSS MB/node' 'PSS MB/node' 'procs' 'procs' 'all N-1: p50 / p99 / max' 'one p50' 'lost'
	printf '   %3s %7s %13s %11s %11s %6s %7s %25s %8s %5s\n' '' '' '' '' '' '/node' 'total' '' '' ''
	for n in $sizes; do
		"$0" --one "$n" || echo "   $n: failed (see above)"
	done
	exit 0
fi

N=$2
. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=${IT_LOG_LEVEL:-warn}
it_init "mesh$N" >/dev/null
it_require_daemon
for c in ip "$IT_SSHD" "$build/bench/bench_mesh"; do
	command -v "$c" >/dev/null || it_abort "$c not found"
done
((N >= 2 && N <= 64)) || it_abort "N must be 2..64"
((SECS >= 10)) || it_abort "BENCH_MESH_SECS must be at least 10"

PFX=ssm$$
BR=${PFX}b
NS_MADE=()
ns() { echo "${PFX}n$1"; }
addr() { echo "10.99.0.$1"; }

mesh_cleanup() {
	local rc=$? i n
	trap - EXIT
	for ((i = 1; i <= IT_NODES; i++)); do daemon_stop "$i" >/dev/null 2>&1; done
	for ((i = 1; i <= IT_NODES; i++)); do sshd_stop "$i" >/dev/null 2>&1; done
	for n in "${NS_MADE[@]}"; do ip netns delete "$n" 2>/dev/null; done
	(exit "$rc")
	it_cleanup >/dev/null
}
trap mesh_cleanup EXIT

# The loopback cluster of lib.sh, then moved onto the bridge: each node's
# sshd on its own address, port 22; each config and known_hosts naming the
# peers by address.
cluster_create "$N" >/dev/null || it_abort "cluster_create $N"
for ((i = 1; i <= N; i++)); do
	d=$T/n$i
	sed -i -e "s/^ListenAddress .*/ListenAddress $(addr "$i")/" -e 's/^Port .*/Port 22/' "$d/sshd/sshd_config"
	awk -v pre="10.99.0." '
		/^\[peer n[0-9]+\]$/ { j = substr($2, 2, length($2) - 2); peer = 1; print; next }
		/^\[/ { peer = 0 }
		peer && $1 == "host" { print "host = " pre j; next }
		peer && $1 == "port" { print "port = 22"; next }
		{ print }' "$d/sessync.conf" >"$d/sessync.conf.new" && mv -f "$d/sessync.conf.new" "$d/sessync.conf"
	: >"$d/known_hosts"
	for ((j = 1; j <= N; j++)); do
		((i == j)) || echo "$(addr "$j") $(cut -d' ' -f1,2 "$T/n$j/sshd/ssh_host_ed25519_key.pub")" >>"$d/known_hosts"
	done
	it_mount_tmpfs "$d/sessions" 64m || it_abort "cannot mount a tmpfs on $d/sessions"
done

ip netns add "$BR" || it_abort "ip netns add $BR"
NS_MADE+=("$BR")
ip -n "$BR" link add br0 type bridge && ip -n "$BR" link set br0 up || it_abort "bridge in $BR"
for ((i = 1; i <= N; i++)); do
	ip netns add "$(ns "$i")" || it_abort "ip netns add $(ns "$i")"
	NS_MADE+=("$(ns "$i")")
	ip -n "$BR" link add "v$i" type veth peer name eth0 netns "$(ns "$i")" &&
		ip -n "$BR" link set "v$i" master br0 && ip -n "$BR" link set "v$i" up &&
		ip -n "$(ns "$i")" link set lo up &&
		ip -n "$(ns "$i")" addr add "$(addr "$i")/24" dev eth0 &&
		ip -n "$(ns "$i")" link set eth0 up || it_abort "veth for n$i"
done

_listening() { [[ -n $(ip netns exec "$(ns "$1")" ss -Hltn "sport = :22" 2>/dev/null) ]]; }
_answers() { "$SESSYNCD" -c "$(node_conf "$1")" --status >/dev/null 2>&1; }
# all_connected: every daemon reports every one of its N-1 peers connected.
all_connected() {
	local i
	for ((i = 1; i <= N; i++)); do
		[[ $("$SESSYNCD" -c "$(node_conf "$i")" --status --json 2>/dev/null | grep -o '"connected": true' | grep -c .) == $((N - 1)) ]] ||
			return 1
	done
}

for ((i = 1; i <= N; i++)); do
	d=$T/n$i
	ip netns exec "$(ns "$i")" "$IT_SSHD" -D -f "$d/sshd/sshd_config" -E "$d/sshd/log" </dev/null &
	echo "$!" >"$d/sshd/pid"
	_it_wait_start "$!" _listening "$i" || it_abort "n$i: sshd on $(addr "$i"):22"
done
for ((i = 1; i <= N; i++)); do
	d=$T/n$i
	ip netns exec "$(ns "$i")" "$SESSYNCD" -c "$d/sessync.conf" </dev/null >>"$d/daemon.log" 2>&1 &
	echo "$!" >"$d/daemon.pid"
	_it_wait_start "$!" _answers "$i" || it_abort "n$i: daemon does not answer"
done
wait_until $((30 + 2 * N)) all_connected || it_abort "not every node connected to all $((N - 1)) peers"

dirs=()
for ((i = 1; i <= N; i++)); do dirs+=("$(node_sessions "$i")"); done
# all_sent: every node has sent everything (pending 0 for every peer).
all_sent() {
	local i
	for ((i = 1; i <= N; i++)); do
		[[ $(sessync_cli "$i" --status --json 2>/dev/null | grep -o '"pending": 0,' | grep -c .) == $((N - 1)) ]] || return 1
	done
}
# Warm-up: every session exists everywhere, every connection has carried
# data, and what that left queued is sent before the measured run.
"$build/bench/bench_mesh" "$RATE" 2 "$SESS" "$SIZE" "${dirs[@]}" >/dev/null || it_abort "warm-up run failed"
wait_until 120 all_sent || echo "   (N=$N: the warm-up's writes were not all sent within 120 s)"

"$build/bench/bench_mesh" "$RATE" "$SECS" "$SESS" "$SIZE" "${dirs[@]}" >"$T/mesh.out" &
bench=$!
it_track_pid "$bench"
groups=()
for ((i = 1; i <= N; i++)); do groups+=("n$i=$(daemon_pid "$i"),$(cat "$T/n$i/sshd/pid")"); done

# sent_total: the updates every daemon has sent to its peers (--status
# "sent", all nodes asked at once), so the CPU can be given per copy
# delivered: on a host that cannot give the mesh the cores it asks for, that
# figure holds where the latency does not.
sent_total() {
	local i
	for ((i = 1; i <= N; i++)); do sessync_cli "$i" --status --json >"$T/st.$i" 2>/dev/null & done
	wait
	cat "$T"/st.* | grep -o '"sent": [0-9]*' | awk '{ s += $2 } END { print s + 0 }'
}
# One window, from 2 s into the run to ~4 s before its last write, for
# procstat and the counters alike (status calls and python's start can take
# a second under load: not in series with the window, and a margin).
win=$((SECS - 6))
sleep 2
python3 "$here/procstat.py" "$win" "${groups[@]}" "bench=$bench" >"$T/procstat.out" &
pst=$!
it_track_pid "$pst"
t0=$(now_ms)
sent0=$(sent_total)
sleep "$(awk -v w="$win" -v a="$t0" -v b="$(now_ms)" 'BEGIN { s = w - 0.5 - (b - a) / 1000; print (s > 0 ? s : 0) }')"
sent1=$(sent_total)
t1=$(now_ms)
wait "$pst" || it_abort "procstat failed"
_it_alive "$bench" || echo "   (N=$N: the measuring window ran past the load: figures too low)"
drss=0
for ((i = 1; i <= N; i++)); do drss=$((drss + $(awk '/^VmRSS/ { print $2 }' "/proc/$(daemon_pid "$i")/status"))); done
wait "$bench" || it_abort "bench_mesh failed"
IT_EXTRA_PIDS=()
# After the load: how long until every node has sent everything, i.e. the
# backlog a saturated mesh built up.
td=$(now_ms)
if wait_until 120 all_sent; then
	drained=$(awk -v a="$td" -v b="$(now_ms)" 'BEGIN { printf "%.1f s", (b - a) / 1000 }')
else
	drained="> 120 s"
fi

# Over the whole life of the mesh (start, warm-up, run, drain), free of
# window alignment: CPU seconds of every node's processes / copies sent.
python3 "$here/procstat.py" life "${groups[@]}" >"$T/life.out"
sent_life=$(sent_total)
life_us=$(awk -v s="$sent_life" '{ for (i = 2; i <= NF; i++) if ($i ~ /^cpu=/) c += substr($i, 5) }
	END { printf "%.0f", s ? c * 1e6 / s : 0 }' "$T/life.out")

kv() { tr ' ' '\n' <"$T/mesh.out" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
awk -v n="$N" -v rate="$(kv rate)" -v p50="$(kv all_p50)" -v p99="$(kv all_p99)" -v mx="$(kv all_max)" \
	-v hop="$(kv hop_p50)" -v lost="$(kv incomplete)" -v sup="$(kv superseded)" -v copies=$((sent1 - sent0)) \
	-v cwin="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1000 }')" -v drained="$drained" -v drss="$drss" -v ovf="$(kv overflows)" -v life_us="$life_us" -v sent_life="$sent_life" '
	function v(k,  i) { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2) }
	$1 ~ /^n[0-9]+$/ { c = v("cpu"); cpu += c; if (c > cmax) cmax = c; rss += v("rss_kb"); pss += v("pss_kb"); procs += v("procs"); m++ }
	$1 == "bench" { bc = v("cpu") }
	END {
		printf "   %3d %7.0f %6.3f(%.3f) %11.1f %11.1f %6.1f %7d %9s / %6s / %6s %8s %5d\n",
			n, rate, cpu / m, cmax, rss / m / 1024, pss / m / 1024, procs / m, procs, p50, p99, mx, hop, lost
		printf "       (all nodes: %.2f cores, %.0f MB PSS, %.0f copies sent/s, %.0f us CPU per copy; load generator + watcher: %.2f cores; %d superseded; all sent %s after the load)\n",
			cpu, pss / 1024, copies / cwin, copies ? cpu * cwin * 1e6 / copies : 0, bc, sup, drained
		printf "       (whole life of the mesh: %d copies sent, %s us CPU per copy; sessyncd alone: %.1f MB RSS per node; the watcher'"'"'s inotify queue overflowed %d times)\n", sent_life, life_us, drss / n / 1024, ovf
	}' "$T/procstat.out"
it_finish >/dev/null
