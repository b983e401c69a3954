#!/usr/bin/env bash
# bench/drain.sh NODES N RTT_MS TAG: `sessyncd --full-sync` of N PHP-like
# sessions of ~1 KB from n1 to its NODES-1 peers, next to one `rsync -a` per
# peer in parallel (what an admin would run instead), over the same sshds,
# the same host keys and, with RTT_MS > 0, the same delay line: a user-space
# proxy (bench/delayproxy.py) in front of each peer's sshd adds RTT_MS/2
# each way (no netem on these machines). Called by bench/run; figures, not
# pass/fail. Results go to $BENCH_RESULTS as "drain.TAG.KEY VALUE".
#
# Order: rsync, sessync, rsync, sessync (each into emptied dirs: before the
# second sessync drain the peers are made new nodes again), so load
# drifting on a shared machine shows as two figures each; the ratio is of
# the means. A profile (BENCH_PROFILE) covers the first sessync drain. Peers' daemons run; n1's does not (the maintenance case: a
# node drains before it goes down). The targets are empty tmpfs dirs.
# CPU: the growth of every node's cgroup (bench/lib_bench.sh), i.e. the CLI,
# the relays, both sshds and the peers' daemons; rsync's client, ssh, sshd
# and rsync --server likewise. Bytes: counted by the delay line (RTT_MS > 0).
# With 3 nodes, N >= 100000: the RSS of every daemon once n1's has started
# on the result and is ready (origin / replicas).
#
# BENCH_PROFILE=perf or =strace (bench/lib_bench.sh prof_start; strace -c -f
# of the CLI, of n2's daemon and of n2's sshd, which follows it into the
# connection and the relay) around the sessync drain; outputs in $BENCH_OUT
# (default $T, kept with KEEP=1).
# shellcheck disable=SC2317  # helpers run through wait_until
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
NODES=${1:-3}
N=${2:-100000}
RTT=${3:-0}
TAG=${4:-n$N}

. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=warn
it_init "drain-$TAG" >/dev/null
it_require_daemon
. "$here/lib_bench.sh"
OUT=${BENCH_OUT:-$T}
trap bench_exit EXIT
PROXY_PIDS=()

cg_init || echo "   (no writable cgroup: no CPU figures)"
cluster_create "$NODES" >/dev/null || it_abort "cluster setup failed"
mb=$((N * 5 / 1000 + 64))
for ((i = 1; i <= NODES; i++)); do
	mkdir -p "$T/n$i/rsync_dst"
	it_mount_tmpfs "$(node_sessions "$i")" "${mb}m" || echo "   (cannot mount tmpfs: not root?)"
	((i > 1)) && it_mount_tmpfs "$T/n$i/rsync_dst" "${mb}m"
done
bench_rsync_key || it_abort "rsync key"

# The way to each peer's sshd: straight, or through a delay line.
declare -A via
for ((i = 2; i <= NODES; i++)); do
	via[$i]=$(node_port "$i")
	if ((RTT > 0)); then
		it_reserve_ports "$T/n$i/proxy.port" || it_abort "no port for the proxy"
		pp=$(cat "$T/n$i/proxy.port")
		python3 "$here/delayproxy.py" "$pp" "$(node_port "$i")" "$(awk -v r="$RTT" 'BEGIN {print r / 2}')" \
			"$T/n$i/proxy.counts" 2>>"$T/proxy.err" &
		PROXY_PIDS+=($!)
		it_track_pid "$!"
		bench_known_port "$pp" "$i"
		awk -v sec="[peer n$i]" -v port="$pp" '
			/^\[/ { in_sec = ($0 == sec) }
			in_sec && $1 == "port" { print "port = " port; next }
			{ print }' "$(node_conf 1)" >"$(node_conf 1).new" && mv "$(node_conf 1).new" "$(node_conf 1)"
		via[$i]=$pp
		wait_until 5 _it_port_listening "$pp" || it_abort "the delay line did not start"
	fi
done

sshds_start_cg >/dev/null || it_abort "sshd did not start"
for ((i = 2; i <= NODES; i++)); do daemon_start_cg "$i" >/dev/null || it_abort "daemon n$i did not start"; done

read -r cnt secs <<<"$(write_1k "$(node_sessions 1)" "$N")"
kb=$(du -sk "$(node_sessions 1)" | cut -f1)
rtt_note="loopback"
((RTT > 0)) && rtt_note="${RTT} ms round trip (delay line)"
echo "== --full-sync of $N sessions of ~1 KB to $((NODES - 1)) peer(s), $rtt_note, vs one rsync -a per peer in parallel (bench/drain.sh)"
echo "   $cnt sessions written into n1 in $secs s ($kb kB on tmpfs)"

proxy_bytes() {
	local i t=0 up down
	for ((i = 2; i <= NODES; i++)); do
		[[ -f $T/n$i/proxy.counts ]] || continue
		read -r up down <"$T/n$i/proxy.counts"
		t=$((t + up + down))
	done
	echo "$t"
}
# Counts are flushed once a second: wait for the figure to stop moving.
proxy_bytes_settled() {
	local a b
	((RTT > 0)) || { echo 0; return; }
	b=$(proxy_bytes)
	for _ in 1 2 3 4 5; do
		sleep 1.1
		a=$(proxy_bytes)
		[[ $a == "$b" ]] && break
		b=$a
	done
	echo "$a"
}

# rsync_all: one rsync -a per peer, in parallel, into its empty rsync_dst;
# prints "ms cpu_us bytes ok".
rsync_all() {
	local t0 t1 c0 c1 b0 b1 ok=1 i
	local -a pids=()
	for ((i = 2; i <= NODES; i++)); do find "$T/n$i/rsync_dst" -mindepth 1 -delete; done
	b0=$(proxy_bytes_settled)
	c0=$(cg_total_usec)
	t0=$(now_ms)
	for ((i = 2; i <= NODES; i++)); do
		cg_run 1 rsync -a -e "$(bench_ssh_cmd "${via[$i]}")" "$(node_sessions 1)/" "127.0.0.1:$T/n$i/rsync_dst/" \
			>>"$T/rsync.err" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || ok=0; done
	t1=$(now_ms)
	c1=$(cg_total_usec)
	b1=$(proxy_bytes_settled)
	for ((i = 2; i <= NODES; i++)); do
		[[ $(same_dirs "$(node_sessions 1)" "$T/n$i/rsync_dst") == "0 0" ]] || ok=0
	done
	echo "$((t1 - t0)) $((c1 - c0)) $((b1 - b0)) $ok"
}

# sessync_drain: "ms cpu_us bytes ok" and the CLI's lines in $T/fullsync.out.
sessync_drain() {
	local t0 t1 c0 c1 b0 b1 ok=1 rc i pre=()
	b0=$(proxy_bytes_settled)
	prof_start "drain.$TAG" "$(daemon_pid 2)" "$(cat "$T/n2/sshd/pid")"
	[[ ${BENCH_PROFILE:-} == strace ]] && pre=(strace -c -f -o "$OUT/strace.drain.$TAG.cli")
	c0=$(cg_total_usec)
	t0=$(now_ms)
	cg_run 1 "${pre[@]}" "$SESSYNCD" -c "$(node_conf 1)" --full-sync >"$T/fullsync.out" 2>"$T/fullsync.err"
	rc=$?
	t1=$(now_ms)
	c1=$(cg_total_usec)
	prof_stop "drain.$TAG"
	b1=$(proxy_bytes_settled)
	((rc == 0)) || ok=0
	for ((i = 2; i <= NODES; i++)); do
		[[ $(same_dirs "$(node_sessions 1)" "$(node_sessions "$i")") == "0 0" ]] || ok=0
	done
	echo "$((t1 - t0)) $((c1 - c0)) $((b1 - b0)) $ok"
}

# empty_peers: the peers as new nodes again (empty session dir, empty
# state dir), so the second drain starts where the first did.
# BENCH_DRAIN_REBOOT=1 instead empties only the session dirs, as a reboot
# does (tmpfs), keeping the peers' journals.
empty_peers() {
	local i
	for ((i = 2; i <= NODES; i++)); do daemon_stop "$i" >/dev/null; done
	for ((i = 2; i <= NODES; i++)); do
		if ((${BENCH_DRAIN_REBOOT:-0})); then
			node_reboot "$i"
		else
			node_wipe "$i"
			find "$(node_state "$i")" -mindepth 1 -delete
		fi
	done
	for ((i = 2; i <= NODES; i++)); do daemon_start_cg "$i" >/dev/null || it_abort "daemon n$i did not restart"; done
}

read -r r1_ms r1_cpu r1_b r1_ok <<<"$(rsync_all)"
read -r s1_ms s1_cpu s1_b s1_ok <<<"$(sessync_drain)"
sed 's/^/   sessyncd: /' "$T/fullsync.out"
[[ -s $T/fullsync.err ]] && tail -n 3 "$T/fullsync.err" | sed 's/^/   sessyncd stderr: /'
read -r r2_ms r2_cpu r2_b r2_ok <<<"$(rsync_all)"
empty_peers
read -r s2_ms s2_cpu s2_b s2_ok <<<"$(BENCH_PROFILE="" sessync_drain)"
peers=$((NODES - 1))
((s1_ok && s2_ok)) || echo "   SESSYNC DRAIN INCOMPLETE: a peer's dir differs from n1's"
((r1_ok && r2_ok)) || { echo "   RSYNC INCOMPLETE:"; tail -n 3 "$T/rsync.err" | sed 's/^/     /'; }
per() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
# Without a cgroup (not root) there is no CPU figure.
[[ -n $_cg_root ]] || { s1_cpu=0 s2_cpu=0 r1_cpu=0 r2_cpu=0; }
cpu_per() { if [[ -n $_cg_root ]]; then per "$@"; else echo "-"; fi; }
rs_mean=$(((r1_ms + r2_ms) / 2))
s_mean=$(((s1_ms + s2_ms) / 2))
fpp=$((N * peers))
how="new nodes"
((${BENCH_DRAIN_REBOOT:-0})) && how="as by a reboot"
echo "   order: rsync, sessync, rsync, sessync (peers emptied before the second: $how)"
echo "   sessync --full-sync: ${s1_ms} ms, ${s2_ms} ms; CPU $(cpu_per "$s1_cpu" $fpp) / $(cpu_per "$s2_cpu" $fpp) us per file per peer"
echo "   rsync -a x$peers in parallel: ${r1_ms} ms, ${r2_ms} ms; CPU $(cpu_per "$r1_cpu" $fpp) / $(cpu_per "$r2_cpu" $fpp) us per file per peer"
((RTT > 0)) && echo "   bytes through the delay line per file per peer: sessync $(per "$s1_b" $fpp) / $(per "$s2_b" $fpp), rsync $(per "$r1_b" $fpp) / $(per "$r2_b" $fpp)"
echo "   ratio sessync / rsync (means): $(per "$s_mean" "$rs_mean")"
bench_result "drain.$TAG.size $N $peers $RTT"
bench_result "drain.$TAG.sessync_ms $s1_ms $s2_ms"
bench_result "drain.$TAG.rsync_ms $r1_ms $r2_ms"
bench_result "drain.$TAG.ok $((s1_ok && s2_ok)) $((r1_ok && r2_ok))"
bench_result "drain.$TAG.cpu_per_file_us $(cpu_per $(((s1_cpu + s2_cpu) / 2)) $fpp) $(cpu_per $(((r1_cpu + r2_cpu) / 2)) $fpp)"
((RTT > 0)) && bench_result "drain.$TAG.bytes_per_file $(per $(((s1_b + s2_b) / 2)) $fpp) $(per $(((r1_b + r2_b) / 2)) $fpp)"

if ((NODES >= 3 && N >= 100000)); then
	daemon_start_cg 1 >/dev/null || it_abort "n1's daemon did not start"
	IT_CLI_TIMEOUT=130 sessync_cli 1 --wait-ready 120 >/dev/null 2>&1 || echo "   (n1 not ready in 120 s)"
	sleep 1
	rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$(daemon_pid "$1")/status"; }
	hwm() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$(daemon_pid "$1")/status"; }
	line="RSS with $N sessions, $NODES nodes: n1 (origin) $(rss 1) MB (peak $(hwm 1))"
	for ((i = 2; i <= NODES; i++)); do line+=", n$i $(rss "$i") MB (peak $(hwm "$i"))"; done
	echo "   $line"
	bench_result "rss.$TAG $(rss 1) $(rss 2)"
fi
it_finish >/dev/null
