#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# The --serve relay never stalls (docs/DESIGN.md "Connections"): 200,000
# sessions on both nodes (so each inventory is ~11 MB), resync_interval = 2 s
# (so n2 sends such an inventory back through n1's relay on n2 every 2 s) and
# writes arriving on n1 throughout (16 KB sessions in bursts, so 256 frames in flight
# fill the relay's socket to the daemon). A relay that blocks on a write
# deadlocks there: n2's daemon stops reading while its 11 MB of replies back
# up, the relay blocks writing the pusher's frames to it and so never drains
# those replies; 20 s later n1 logs "no answer for 20 s" and reconnects (or
# n2 "silent for 30 s"), and writes stop arriving.
# Checked: no "silent for" and no "no answer for" in either log, n1 -> n2 connected once, no
# reconnect, and every write arrived (bytes and mtime ns).
#   SESSYNCD=/path/to/main/sessyncd tests/integration/t_relay_big.sh   fails on
# main as of f3781d0 (3 x "no answer for 20 s"); a server that keeps reading
# behind a big inventory (b10-bounds) hides the relay's deadlock here, and
# t_relay_pump.sh shows it with the relay alone.
# IT_RELAY_SESSIONS (200000) and IT_RELAY_SECONDS (12) and IT_RELAY_RATE (250 writes/s) scale it.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_relay_big
it_require_daemon

N=${IT_RELAY_SESSIONS:-200000}
SECS=${IT_RELAY_SECONDS:-12}

cluster_create 2 || it_abort "cluster_create"
for i in 1 2; do
	it_mount_tmpfs "$(node_sessions "$i")" 1200m || it_abort "cannot mount a tmpfs on n$i's session dir (root needed)"
	node_conf_set "$i" resync_interval 2s
	node_conf_set "$i" log_level info
	node_conf_set "$i" max_file_size 64K
done

# The same N sessions, byte for byte and mtime for mtime, on both nodes: the
# inventories match, nothing needs sending at connect, and every periodic
# inventory is the full ~55 bytes x N.
t0=$(now_ms)
python3 - "$N" "$(node_sessions 1)" <<'PY' || it_abort "cannot create the sessions"
import os, sys
n, d = int(sys.argv[1]), sys.argv[2]
base = 1_700_000_000_000_000_000
for i in range(n):
    fd = os.open(os.path.join(d, "sess_%032d" % i), os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b'user|s:7:"u%06d";' % (i % 1000000))
    os.utime(fd, ns=(base + i, base + i))
    os.close(fd)
PY
cp -a "$(node_sessions 1)/." "$(node_sessions 2)/" || it_abort "cannot copy the sessions to n2"
it_note "measured: created $N sessions on each node in $(($(now_ms) - t0)) ms"

IT_START_TIMEOUT=30 cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 60 peer_connected 1 n2
check "n2 -> n1 connected" wait_until 60 peer_connected 2 n1

fault_phpish
# Writes throughout: new 16 KB sessions on n1, RATE a second (well within
# what replication keeps up with: the test is about the relay, not
# throughput), for SECS seconds. Prints how many.
cat >"$T/writer.py" <<'PY'
import os, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[0]))
import phpish
d, secs, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
t0 = time.time()
i = 0
while time.time() < t0 + secs:
    phpish.write(os.path.join(d, "sess_w%06d" % i), phpish.php_string("pad", ("%06d" % i) * 2730))
    i += 1
    # In bursts of 100, as a page of AJAX calls makes them: a burst is
    # ~1.6 MB of frames, which must get past the relay while it drains an
    # inventory the other way.
    ahead = t0 + i / rate - time.time()
    if i % 100 == 0 and ahead > 0:
        time.sleep(ahead)
print(i)
PY
t0=$(now_ms)
W=$(python3 "$T/writer.py" "$(node_sessions 1)" "$SECS" "${IT_RELAY_RATE:-250}") || fail "writer failed"
it_note "measured: $W writes of 16 KB on n1 in $(($(now_ms) - t0)) ms"
((W > 500)) && ok "the writer made $W writes (> 500)" || fail "the writer made only '$W' writes"

# all_arrived: every sess_w* of n1 is on n2 with the same bytes and mtime.
all_arrived() {
	python3 - "$(node_sessions 1)" "$(node_sessions 2)" "$W" <<'PY'
import os, sys
a, b, w = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(w):
    n = "sess_w%06d" % i
    try:
        sa, sb = os.stat(os.path.join(a, n)), os.stat(os.path.join(b, n))
    except FileNotFoundError:
        sys.exit(1)
    if sa.st_mtime_ns != sb.st_mtime_ns or open(os.path.join(a, n), "rb").read() != open(os.path.join(b, n), "rb").read():
        sys.exit(1)
PY
}
t0=$(now_ms)
check "every write arrived on n2 (bytes and mtime ns)" wait_until 60 all_arrived
it_note "measured: the last write arrived $(($(now_ms) - t0)) ms after the writer stopped"

# A stall shows 30 s after it began: give one that began late in the writes
# the time to show.
sleep "${IT_RELAY_AFTER:-5}"
check "no \"silent for\" on n2 (its inbound connection from n1 never stalled)" not grep -q 'silent for' "$(node_log 2)"
check "no \"silent for\" on n1" not grep -q 'silent for' "$(node_log 1)"
check "no \"no answer for\" on n1 (the pusher never waited 20 s for n2)" not grep -q 'no answer for' "$(node_log 1)"
c1=$(grep -c 'peer "n2": connected,' "$(node_log 1)")
assert_eq "$c1" 1 "n1 -> n2 connected exactly once (no reconnect)"
check "n2 never saw n1's connection drop" not grep -q 'peer "n1": disconnected from us' "$(node_log 2)"
check "n1 -> n2 still connected" peer_connected 1 n2
check "cluster stops cleanly" cluster_stop
it_finish
