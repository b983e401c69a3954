#!/usr/bin/env bash
# The request path: PHP's own files handler on tmpfs, as many PHP processes
# as cores (bench/request_path.php, php-cli workers in a loop: session_start
# on one of 10,000 ~4.8 KB sessions, change a small value,
# session_write_close), at fixed offered rates, latency counted from each
# request's scheduled time (open loop). Measured with sessyncd off and with
# sessyncd on, replicating node 1's directory to 2 peers (3 nodes on
# loopback, lib.sh's cluster, session dirs on tmpfs), alternating, so the
# load other users of the machine put on it falls on both alike.
#
# usage: bench/request_path.sh
# knobs: BENCH_RP_RATES ("1000 5000" requests/s in total), BENCH_RP_SECS (10
#        per phase), BENCH_RP_SESSIONS (10000), BENCH_RP_DISTS ("uniform zipf":
#        zipf is s = 1, the busiest session gets ~10% of requests, so PHP
#        often finds sessyncd reading the file it just wrote),
#        BENCH_RP_ROUNDS (2: off/on pairs per rate and distribution, then
#        all rounds pooled),
#        BENCH_RP_WORKERS (nproc), BENCH_RP_PEER_NICE (19).
# On this machine the two peers run on the same cores as node 1. In
# production the receivers' work (their sshd, relays and daemons) runs on
# other machines, so here it runs at nice BENCH_RP_PEER_NICE: it takes only
# what node 1's PHP and sessyncd leave. With 0 "on" pays for all three nodes.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
RATES=${BENCH_RP_RATES:-1000 5000}
SECS=${BENCH_RP_SECS:-10}
NSESS=${BENCH_RP_SESSIONS:-10000}
DISTS=${BENCH_RP_DISTS:-uniform zipf}
ROUNDS=${BENCH_RP_ROUNDS:-2}
WORKERS=${BENCH_RP_WORKERS:-$(nproc)}
PEER_NICE=${BENCH_RP_PEER_NICE:-19}

. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=${IT_LOG_LEVEL:-warn}
it_init request_path >/dev/null
it_require_daemon
command -v php >/dev/null || it_abort "php not installed"
cluster_create 3 >/dev/null || it_abort "cluster setup failed"
for i in 1 2 3; do
	it_mount_tmpfs "$(node_sessions "$i")" 256m || it_abort "cannot mount tmpfs (needs root)"
done

# 10,000 sessions of ~4.8 KB in PHP's serialize format (the workers'
# session_start unserializes them), made before the daemons start: the
# first start's catch-up copies them to the peers.
python3 - "$(node_sessions 1)" "$NSESS" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
pad = "x" * 4700
body = f'n|i:0;last|i:0;user|s:5:"alice";pad|s:{len(pad)}:"{pad}";'.encode()
for i in range(n):
    fd = os.open(f"{d}/sess_rp{i:05d}", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, body)
    os.close(fd)
PY

# caught_up: n1's daemon has both peers connected and nothing pending.
caught_up() {
	local j
	j=$(sessync_cli 1 --status --json 2>/dev/null) || return 1
	[[ $(grep -o '"connected": true' <<<"$j" | grep -c .) == 2 && $(grep -o '"pending": 0,' <<<"$j" | grep -c .) == 2 ]]
}
daemons_on() {
	local i
	for i in 1 2 3; do daemon_start "$i" >/dev/null || return 1; done
	renice -n "$PEER_NICE" -p "$(daemon_pid 2)" "$(daemon_pid 3)" >/dev/null
	wait_until 300 caught_up
}
daemons_off() {
	local i
	for i in 1 2 3; do daemon_stop "$i" >/dev/null 2>&1; done
}
for i in 1 2 3; do sshd_start "$i" >/dev/null || it_abort "sshd n$i"; done
# The receivers' sshd: what it forks per connection (sshd, relay) inherits it.
renice -n "$PEER_NICE" -p "$(cat "$T/n2/sshd/pid")" "$(cat "$T/n3/sshd/pid")" >/dev/null
daemons_on || it_abort "first catch-up of $NSESS sessions did not finish"
[[ $(find "$(node_sessions 3)" -name 'sess_rp*' | wc -l) == "$NSESS" ]] || it_abort "n3 does not hold all $NSESS sessions"

# summarize MODE RATE DIST FILE...: one result line from worker sample files.
summarize() {
	python3 - "$@" <<'PY'
import sys
mode, rate, dist, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
lat, st, waits, secs = [], [], [], {}
for f in files:
    run = f.rsplit(".", 1)[0]   # one phase: its workers share a clock origin
    for line in open(f):
        due, l, s, b = map(int, line.split())
        lat.append(l); st.append(s); secs[run] = max(secs.get(run, 0), due + l)
        if b:
            waits.append(s)
lat.sort(); st.sort()
p = lambda v, q: v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))] / 1000.0
print(f"{mode} {rate} {dist} {len(lat) / (sum(secs.values()) / 1e6):.0f} {p(lat, .5):.3f} {p(lat, .99):.3f} "
      f"{lat[-1] / 1000.0:.2f} {p(st, .99):.3f} {len(waits)} {max(waits, default=0) / 1000.0:.2f}")
PY
}

# phase MODE RATE DIST ROUND: WORKERS php processes for SECS at RATE in
# total; prints one result line and keeps the samples for the summary.
phase() {
	local mode=$1 rate=$2 dist=$3 w s=0 pids=() out=$T/rp.$1.$2.$3.r$4
	[[ $dist == zipf ]] && s=1
	for ((w = 1; w <= WORKERS; w++)); do
		IT_PHP_TIMEOUT=$((SECS * 3 + 60)) _it_php 1 "$here/request_path.php" \
			"$(awk -v r="$rate" -v n="$WORKERS" 'BEGIN { print r / n }')" "$SECS" "$NSESS" "$s" "$RANDOM$w" "$out.$w" &
		pids+=("$!")
		it_track_pid "$!"
	done
	for w in "${pids[@]}"; do wait "$w" || { echo "   php worker failed ($mode $rate $dist)"; return 1; }; done
	IT_EXTRA_PIDS=()
	summarize "$mode" "$rate" "$dist" "$out".*
}

# row OFF_LINE ON_LINE: the two lines, the second with the p99 ratio.
row() {
	local l mode rt ds rps p50 p99 mx sp99 nw wmx ratio off99
	off99=$(cut -d' ' -f6 <<<"$1")
	for l in "$1" "$2"; do
		read -r mode rt ds rps p50 p99 mx sp99 nw wmx <<<"$l"
		ratio=""
		[[ $mode == on ]] && ratio=$(awk -v a="$p99" -v b="$off99" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
		printf '   %5s %7s %4s %7s %7s %7s %8s %9s %9s %9s %10s\n' \
			"$rt" "$ds" "$mode" "$rps" "$p50" "$p99" "$mx" "$sp99" "$nw" "$wmx" "$ratio"
	done
}
header() {
	printf '   %5s %7s %4s %7s %7s %7s %8s %9s %9s %9s %10s\n' \
		rate dist sync 'req/s' p50 p99 max 'start p99' 'lockwaits' 'wait max' 'p99 on/off'
}

echo "== request path: PHP's files handler, $WORKERS php processes, $NSESS sessions of ~4.8 KB on tmpfs, ${SECS} s per phase,"
echo "   $ROUNDS round(s) of sessyncd off then on (replicating to 2 peers; they run on the same cores at nice $PEER_NICE);"
echo "   latency from each request's scheduled time to session_write_close done (ms); session_start = open + flock wait + read;"
echo "   lockwaits: requests whose session_start slept on the flock (PHP's other worker or sessyncd's shared lock), wait max: the longest"
header
for ((r = 1; r <= ROUNDS; r++)); do
	for rate in $RATES; do
		for dist in $DISTS; do
			daemons_off
			off=$(phase off "$rate" "$dist" "$r") || it_abort "phase off $rate $dist"
			daemons_on || it_abort "catch-up after the off phase did not finish"
			on=$(phase on "$rate" "$dist" "$r") || it_abort "phase on $rate $dist"
			row "$off" "$on"
		done
	done
done
if ((ROUNDS > 1)); then
	echo "   all $ROUNDS rounds pooled:"
	header
	for rate in $RATES; do
		for dist in $DISTS; do
			row "$(summarize off "$rate" "$dist" "$T/rp.off.$rate.$dist".r*)" \
				"$(summarize on "$rate" "$dist" "$T/rp.on.$rate.$dist".r*)"
		done
	done
fi
it_finish >/dev/null
