#!/usr/bin/env bash
# Idle cost and memory: a 4-node cluster on loopback (each daemon has 3
# peers) holding BENCH_IDLE_SESSIONS (100,000) sessions of ~1 KB, all
# replicated, then left alone. Prints each daemon's RSS (and its peak), then
# over BENCH_IDLE_SECS (30) of idle: cores used and wakeups per second per
# node (daemon + sshd + the relays sshd forked), and over 10 s the system
# calls of n1's daemon and of one of its relays (strace -c), per second.
# Idle should cost ~0: no busy polling, keepalives only. Then the same over
# 65 s, which holds one periodic catch-up per connection (BENCH_IDLE_RESYNC=0
# skips it).
#
# usage: bench/idle.sh
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
NSESS=${BENCH_IDLE_SESSIONS:-100000}
SECS=${BENCH_IDLE_SECS:-30}

. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=${IT_LOG_LEVEL:-warn}
it_init idle >/dev/null
it_require_daemon
cluster_create 4 >/dev/null || it_abort "cluster setup failed"
for i in 1 2 3 4; do
	it_mount_tmpfs "$(node_sessions "$i")" 1g || it_abort "cannot mount tmpfs (needs root)"
done
python3 - "$(node_sessions 1)" "$NSESS" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
pad = "x" * 960
body = f'n|i:0;user|s:5:"alice";pad|s:{len(pad)}:"{pad}";'.encode()
for i in range(n):
    fd = os.open(f"{d}/sess_idle{i:06d}", os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, body)
    os.close(fd)
PY
# caught_up I: node I has its 3 peers connected and nothing pending.
caught_up() {
	local j
	j=$(sessync_cli "$1" --status --json 2>/dev/null) || return 1
	[[ $(grep -o '"connected": true' <<<"$j" | grep -c .) == 3 && $(grep -o '"pending": 0,' <<<"$j" | grep -c .) == 3 ]]
}
all_caught_up() { caught_up 1 && caught_up 2 && caught_up 3 && caught_up 4; }
t0=$(now_ms)
cluster_start >/dev/null || it_abort "cluster did not start"
wait_until 600 all_caught_up || it_abort "$NSESS sessions not replicated to 3 peers within 600 s"
for i in 2 3 4; do
	[[ $(find "$(node_sessions "$i")" -name 'sess_idle*' | wc -l) == "$NSESS" ]] || it_abort "n$i does not hold all $NSESS sessions"
done
echo "== idle: 4 nodes (3 peers each), $NSESS sessions of ~1 KB, replicated in $(( ($(now_ms) - t0) / 1000 )) s"
for i in 1 2 3 4; do
	awk -v n="n$i" '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "   %s sessyncd: RSS %.1f MB (peak %.1f MB)\n", n, r / 1024, h / 1024 }' \
		"/proc/$(daemon_pid "$i")/status"
done
sleep 5   # past the last acknowledgements and journal writes
groups=()
for i in 1 2 3 4; do groups+=("n$i=$(daemon_pid "$i"),$(cat "$T/n$i/sshd/pid")"); done
for i in 1 2 3 4; do groups+=("n$i-daemon=$(daemon_pid "$i")"); done
echo "   over $SECS s idle, per node (daemon + sshd + its 3 relays and their sshd children), then the daemon alone:"
python3 "$here/procstat.py" "$SECS" "${groups[@]}" | sed 's/^/     /'
# resync_interval (60 s): every connection asks for its peer's inventory
# of all sessions once a minute ("Periodic catch-up"); a window of 65 s
# holds one such round per connection, whatever its phase.
if ((${BENCH_IDLE_RESYNC:-1})); then
	echo "   over 65 s idle (one periodic catch-up per connection, resync_interval = 60 s):"
	python3 "$here/procstat.py" 65 "${groups[@]}" | sed 's/^/     /'
fi
relay=$(pgrep -f -- "-c $T/n1/sessync.conf --serve" | head -n 1)
for who in "daemon=$(daemon_pid 1)" "relay=$relay"; do
	pid=${who#*=}
	[[ -n $pid ]] || continue
	timeout -s INT 10 strace -c -f -o "$T/strace.${who%%=*}" -p "$pid" >/dev/null 2>&1
	calls=$(awk '$NF == "total" { print $4 }' "$T/strace.${who%%=*}")
	echo "   n1 ${who%%=*} (pid $pid), strace -c over 10 s: ${calls:-0} system calls ($(awk -v c="${calls:-0}" 'BEGIN { printf "%.1f", c / 10 }')/s)"
	awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" { printf "     %s x%s\n", $NF, $4 }' \
		"$T/strace.${who%%=*}" | head -n 8
done
it_finish >/dev/null
