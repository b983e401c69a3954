#!/usr/bin/env bash
# Attack reproducer (not part of tests/run): a hostile peer on the far side of
# n1's OUTBOUND libssh2 connection. n2's sshd runs tests/attack/hostile_peer.py
# MODE instead of `sessyncd --serve`; n2's daemon never runs. We sample n1's
# RSS and the latency of `--status` for SECS seconds.
#   MODE=inv   endless INV before INV_END (n1 not ready yet)
#   MODE=pong  endless PONGs as fast as the channel takes them
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../integration/lib.sh"
MODE=${MODE:-inv}
SECS=${SECS:-20}
it_init a_outbound_$MODE
it_require_daemon
IT_LOG_LEVEL=info cluster_create 2 || it_abort "cluster setup failed"
ak=$(node_dir 2)/sshd/authorized_keys
ck=$(cut -d' ' -f1,2 "$(node_dir 1)/id_ed25519.pub")
echo "command=\"python3 $here/hostile_peer.py $MODE n2 n1\",restrict $ck n1" >"$ak"
node_conf_set 1 ready_timeout "${READY_TIMEOUT:-30s}"
sshd_start 2 || it_abort "sshd did not start"
daemon_start 1 || it_abort "daemon did not start"
pid=$(daemon_pid 1)
t0=$(now_ms)
max_st=0
for ((s = 1; s <= SECS; s++)); do
	sleep 1
	a=$(now_ms)
	st=$(IT_CLI_TIMEOUT=10 sessync_cli 1 --status --json 2>&1 | head -c 200 | tr -d '\n')
	b=$(now_ms)
	((b - a > max_st)) && max_st=$((b - a))
	rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)
	cpu=$(awk '{print $14+$15}' "/proc/$pid/stat" 2>/dev/null)
	echo "# t=$(( ($(now_ms) - t0) / 1000 ))s rss=${rss:-dead}kB cpu_ticks=${cpu:-?} status_ms=$((b - a)) ${st:0:60}"
	[[ -z $rss ]] && break
done
hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null)
echo "# VmHWM=${hwm:-dead}kB worst --status ${max_st} ms"
grep -E 'ready|peer "n2"' "$(node_log 1)" | tail -5 | sed 's/^/# log: /'
echo "# n1 daemon.log: $(wc -l <"$(node_log 1)") lines, $(wc -c <"$(node_log 1)") bytes"
check "n1 alive" daemon_running 1
check "n1 VmHWM under 320 MiB: one inventory of 1M entries (${hwm:-?} kB)" test "${hwm:-999999999}" -lt 327680
check "--status under 2 s (worst ${max_st} ms)" test "$max_st" -lt 2000
it_finish
