#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# Replication latency, measured rather than asserted: 50 sequential PHP
# writes to distinct sessions on n1; for each, the time from the end of
# PHP's session_write_close() (microtime(true), printed by PHP) to the moment
# a reader on n2 polling every 1 ms sees the same bytes (time.time(); both
# are CLOCK_REALTIME on this one machine). PHP's start-up (~15-30 ms) is not
# counted. The daemon starts on the close inside session_write_close(), so a
# sample can come out slightly negative; the same figures measured from just
# before session_write_close() are printed too (an upper bound). Prints min/median/p95/max; asserts only a loose median bound so it
# cannot be flaky on a loaded CI machine.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_latency
it_require_daemon

COUNT=${IT_LATENCY_COUNT:-50}
BOUND_MS=${IT_LATENCY_BOUND_MS:-1000}

cluster_create 3 && cluster_start || it_abort "cluster did not start"
ok "3-node cluster started"

# Warm up: the first connection is up and one session has gone through.
check "warm-up session reaches n2" php_session 1 latWarmup0123 '$_SESSION["w"] = 1;'
check "... within 10 s" wait_until 10 files_equal "$(node_sess_file 1 latWarmup0123)" "$(node_sess_file 2 latWarmup0123)"

# php_on_n1 ARGS...: php exactly as lib.sh's php_* helpers run it on n1
# (the module check done above is baked in), for the Python driver.
extra=""
((${#IT_PHP_EXTRA[@]})) && extra=$(printf '%q ' "${IT_PHP_EXTRA[@]}")
cat >"$T/php_on_n1" <<EOF
#!/usr/bin/env bash
. $(printf '%q' "$IT_LIB_DIR/lib.sh")
T=$(printf '%q' "$T")
IT_PHP_CHECKED=1
IT_PHP_EXTRA=($extra)
_it_php 1 "\$@"
EOF
chmod 0755 "$T/php_on_n1"

# The driver: one PHP request at a time; while it runs, poll n2's copy every
# 1 ms; record seen - written. The value is random, so the bytes on n2 can
# only be this write's. Prints one summary line; per-sample figures go to
# $T/latency.samples.
cat >"$T/driver.py" <<'EOF'
import os, secrets, statistics, subprocess, sys, time
php, sess2, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
code = ('session_id($argv[1]); if (!session_start()) exit(1); $_SESSION["v"] = $argv[2];'
        '$t0 = microtime(true); if (!session_write_close()) exit(1);'
        'printf("%.6f %.6f\\n", $t0, microtime(true));')
lat, lat0, failures = [], [], []
for i in range(count):
    sid = "lat%02dx%s" % (i, secrets.token_hex(6))
    val = "latency-%d-%s" % (i, secrets.token_hex(24))
    want = ('v|s:%d:"%s";' % (len(val), val)).encode()
    path = os.path.join(sess2, "sess_" + sid)
    proc = subprocess.Popen([php, "-r", code, "--", sid, val], stdout=subprocess.PIPE)
    seen, deadline = None, time.time() + 10
    while time.time() < deadline:
        try:
            if os.stat(path).st_size == len(want):
                with open(path, "rb") as f:
                    if f.read() == want:
                        seen = time.time()
                        break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    try:
        stdout, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
    if proc.returncode != 0 or seen is None:
        failures.append("%s: php exit %s, %s" % (sid, proc.returncode, "seen" if seen else "never seen on n2"))
        continue
    t_before, t_after = (float(x) for x in stdout.split()[-2:])
    lat.append((seen - t_after) * 1000.0)
    lat0.append((seen - t_before) * 1000.0)
with open(out, "w") as f:
    f.write("\n".join("%.3f" % x for x in lat) + "\n")
    for x in failures:
        f.write("failed: %s\n" % x)
if not lat:
    print("n=0 failed=%d" % len(failures))
    sys.exit(1)
def figures(v):
    s = sorted(v)
    p95 = s[min(len(s) - 1, max(0, int(round(0.95 * len(s))) - 1))]
    return "min=%.1f median=%.1f p95=%.1f max=%.1f" % (s[0], statistics.median(s), p95, s[-1])
print("n=%d failed=%d %s | from before session_write_close(): %s" %
      (len(lat), len(failures), figures(lat), figures(lat0)))
EOF

t0=$(now_ms)
summary=$(timeout 120 python3 "$T/driver.py" "$T/php_on_n1" "$(node_sessions 2)" "$COUNT" "$T/latency.samples")
rc=$?
it_note "driver took $(($(now_ms) - t0)) ms"
sed -n 's/^failed: /#   failed: /p' "$T/latency.samples" 2>/dev/null
echo "# measured: latency n1 write -> n2 same bytes (ms): $summary"
assert_eq "$rc" 0 "the driver ran"
assert_contains "$summary" "n=$COUNT failed=0 " "all $COUNT writes were seen on n2"
median=$(sed -n 's/^[^|]* median=\([-0-9.]*\).*/\1/p' <<<"$summary")
if [[ -n $median ]] && awk -v m="$median" -v b="$BOUND_MS" 'BEGIN { exit !(m < b) }'; then
	ok "median latency ${median} ms < ${BOUND_MS} ms"
else fail "median latency ${median:-?} ms < ${BOUND_MS} ms"; fi

# Every one of them is complete on n2 and n3, mtime ns included.
all_equal() {
	local f b p
	for f in "$(node_sessions 1)"/sess_lat*; do
		b=${f##*/}
		for p in 2 3; do files_equal "$f" "$(node_sessions "$p")/$b" || return 1; done
	done
}
check "all $COUNT sessions are on n2 and n3 with equal bytes and mtime ns" wait_until 10 all_equal

check "cluster stops cleanly" cluster_stop
it_finish
