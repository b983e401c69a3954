#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# PHP's lock is respected on both ends (docs/DESIGN.md "PHP's files handler"):
#  1. Sender: a session rewritten under flock(LOCK_EX) in two halves a second
#     apart is never shipped half-written. Meanwhile a reader on n2 that locks
#     as PHP does sees only the whole old or the whole new content, and in the
#     end n2 has the new content with the same mtime.
#  2. Receiver: while a PHP request on n2 holds the session's lock, an update
#     from n1 is not applied (the file stays untouched) and it is not lost: it
#     is applied, in place, soon after the lock is released.
#  3. Receiver busy: retrying a small change while n2's lock is held costs
#     little (not the whole file every few milliseconds).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_locked
it_require_daemon

WAIT=${IT_WAIT:-10}   # seconds for a change to reach a node (2-core CI)

cluster_create 3 && cluster_start || it_abort "cluster did not start"
ok "3-node cluster started"

# ---------------------------------------------------------------- helpers

# writer.py PATH NEWFILE HOLD_S: rewrite PATH in place the way PHP does
# (open O_RDWR, flock LOCK_EX, truncate, write) but in two halves HOLD_S
# apart. Halfway, a second descriptor opened O_RDWR is closed without
# writing: a concurrent request that gave up waiting for the lock. That
# raises IN_CLOSE_WRITE while the file is half-written, so a sender that read
# without the lock would ship the half. Prints the release time.
cat >"$T/writer.py" <<'EOF'
import fcntl, os, sys, time
path, newfile, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
new = open(newfile, "rb").read()
half = len(new) // 2

def write_all(fd, b):
    while b:
        b = b[os.write(fd, b):]

fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
write_all(fd, new[:half])
other = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
os.close(other)                 # IN_CLOSE_WRITE on a half-written file
time.sleep(hold)
write_all(fd, new[half:])
fcntl.flock(fd, fcntl.LOCK_UN)
print("%.6f" % time.time(), flush=True)
os.close(fd)
EOF

# poller.py PATH OLDFILE NEWFILE STOPFILE OUT: every 20 ms open PATH, take
# LOCK_SH (a reader honouring the lock PHP and the applier take), read it
# whole and classify it: old, new, or bad (anything else: missing, empty,
# truncated, mixed). Runs until STOPFILE exists (30 s at most), with one
# last read after it appeared. Writes
# "ready" to OUT.ready after its first read and a summary to OUT.
cat >"$T/poller.py" <<'EOF'
import fcntl, os, sys, time
path, oldf, newf, stop, out = sys.argv[1:6]
old, new = open(oldf, "rb").read(), open(newf, "rb").read()
counts = {"old": 0, "new": 0, "bad": 0}
bad, seq = [], []
deadline = time.time() + 30
while time.time() < deadline:
    last = os.path.exists(stop)   # before the read: the last read sees what was there at stop
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            chunks = []
            while True:
                b = os.read(fd, 1 << 16)
                if not b:
                    break
                chunks.append(b)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    except FileNotFoundError:
        data = None
    if data == old:
        kind = "old"
    elif data == new:
        kind = "new"
    else:
        kind = "bad"
        desc = "missing" if data is None else "%d bytes, head %r tail %r" % (len(data), data[:12], data[-12:])
        if len(bad) < 5:
            bad.append(desc)
    counts[kind] += 1
    if not seq or seq[-1] != kind:
        seq.append(kind)
    if sum(counts.values()) == 1:
        open(out + ".ready", "w").close()
    if last:
        break
    time.sleep(0.02)
with open(out, "w") as f:
    f.write("reads=%d old=%d new=%d bad=%d seq=%s\n" % (sum(counts.values()), counts["old"],
            counts["new"], counts["bad"], ",".join(seq)))
    for b in bad:
        f.write("bad: %s\n" % b)
EOF

# replicated SID: n2's and n3's copies equal n1's (bytes, mtime ns).
replicated() {
	files_equal "$(node_sess_file 1 "$1")" "$(node_sess_file 2 "$1")" &&
		files_equal "$(node_sess_file 1 "$1")" "$(node_sess_file 3 "$1")"
}

# wait_exit PID TIMEOUT: wait for our background child PID to exit, bounded;
# returns its exit status (1 on timeout).
wait_exit() {
	wait_until "$2" not _it_alive "$1" || return 1
	wait "$1"
}

# ---------------------------------------------------------------- 1. sender side
sid=lockedWriter0123456789
f1=$(node_sess_file 1 "$sid")
f2=$(node_sess_file 2 "$sid")

# Old content by PHP (~64 KB); new content of another length, so that a mix
# or a truncation can never equal either.
check "n1: PHP writes a 64 KB session" php_session 1 "$sid" '$_SESSION["blob"] = str_repeat("A", 65000);'
check "it reaches n2 and n3" wait_until "$WAIT" replicated "$sid"
cp -- "$f1" "$T/old"
{ printf 'blob|s:64000:"'; head -c 64000 /dev/zero | tr '\0' B; printf '";'; } >"$T/new"
old_size=$(stat -c %s "$T/old") new_size=$(stat -c %s "$T/new")
if ((old_size > 60000 && new_size > 60000 && old_size != new_size)); then
	ok "old and new contents are $old_size and $new_size bytes"
else fail "old and new contents are ~64 KB and differ in length ($old_size, $new_size)"; fi

python3 "$T/poller.py" "$f2" "$T/old" "$T/new" "$T/poll.stop" "$T/poll.out" &
poller=$!
it_track_pid "$poller"
check "the locked reader on n2 is polling" wait_until 5 test -e "$T/poll.out.ready"

t_release=$(timeout 20 python3 "$T/writer.py" "$f1" "$T/new" 1.0)
check "n1: the writer held LOCK_EX across a 1 s pause and finished" test -n "$t_release"
check "n1 holds the new content" cmp -s -- "$f1" "$T/new"
check "n2 and n3 get the new content with n1's mtime ns" wait_until "$WAIT" replicated "$sid"
: >"$T/poll.stop"
check "the poller on n2 stops" wait_exit "$poller" 5
summary=$(head -n 1 "$T/poll.out" 2>/dev/null)
it_note "n2 locked reads: $summary"
sed -n 's/^bad: /#   n2 saw: /p' "$T/poll.out" 2>/dev/null
reads=$(sed -n 's/.*reads=\([0-9]*\).*/\1/p' <<<"$summary")
if ((${reads:-0} >= 20)); then ok "the poller read n2's copy ${reads} times"; else fail "the poller read n2's copy ${reads:-0} times (want >= 20)"; fi
assert_contains "$summary" "bad=0 " "n2 never showed a half-written, truncated, mixed or missing file"
assert_contains "$summary" "seq=old,new" "n2 showed the whole old content, then the whole new content, nothing else"

# ---------------------------------------------------------------- 2. receiver side
sid=lockedReceiver0123456789
f1=$(node_sess_file 1 "$sid")
f2=$(node_sess_file 2 "$sid")
check "n1: PHP creates a session" php_session 1 "$sid" '$_SESSION["v"] = "version-1";'
check "it reaches n2 and n3" wait_until "$WAIT" replicated "$sid"
old_md5=$(md5sum <"$f2" | cut -d' ' -f1)
old_mtime=$(mtime_ns "$f2")
ino=$(stat -c %i -- "$f2")

# A PHP request on n2 holds the session's lock for 1.5 s, then ends with
# session_abort() (no write, so it makes no version of its own). Just before
# letting go it reports the md5 and mtime of the file on disk; after it,
# the time of the release.
_it_php 2 -r '
	session_id($argv[1]);
	if (!session_start()) exit(1);
	touch($argv[2]);
	usleep(1500000);
	$p = session_save_path() . "/sess_" . session_id();
	clearstatcache();
	$md5 = md5(file_get_contents($p));
	$st = stat($p);
	session_abort();
	printf("%s %d %.6f\n", $md5, $st["mtime"], microtime(true));' -- "$sid" "$T/holder.locked" >"$T/holder.out" &
holder=$!
it_track_pid "$holder"
check "n2: a PHP request holds the session's lock" wait_until 5 test -e "$T/holder.locked"

check "n1: PHP updates the session meanwhile" php_session 1 "$sid" '$_SESSION["v"] = "version-2";'
t_update=$(now_ms)
check "n3 (no lock held there) gets the update" wait_until "$WAIT" \
	files_equal "$f1" "$(node_sess_file 3 "$sid")"
check "n2's PHP request ends normally" wait_exit "$holder" 10
read -r held_md5 held_mtime t_rel <"$T/holder.out"
assert_eq "${held_md5:-}" "$old_md5" "n2's file was untouched while the PHP request held the lock"
assert_eq "${held_mtime:-}" "${old_mtime:0:10}" "n2's mtime was untouched while the PHP request held the lock"
check "n2 gets the update after the release (not lost)" wait_until "$WAIT" files_equal "$f1" "$f2"
t_seen=$(now_ms)
rel_us=${t_rel:-0}
rel_ms=$((10#${rel_us//./} / 1000))   # "%.6f" seconds -> ms
it_note "update written on n1 $((rel_ms - t_update)) ms before n2's lock was released; applied on n2 within $((t_seen - rel_ms)) ms after the release"
assert_eq "$(stat -c %i -- "$f2")" "$ino" "n2 applied it in place (same inode the PHP request had open)"
assert_eq "$(php_read 2 "$sid" | tr -d ' \n')" "array('v'=>'version-2',)" "PHP on n2 now reads version-2"

# ---------------------------------------------------------------- 3. busy costs little
# While the receiver's lock is held, "retry soon" must stay cheap: a PHP
# request there can run for seconds (a report, a slow API call). A small
# change to a 64 KB session is a small delta (docs/DESIGN.md "Deltas"); retrying
# it must not upload the whole file again every few milliseconds, which
# would turn one session into megabytes per second per peer. Retrying the
# delta, or backing off, both stay far below 16 whole copies in 1.5 s.
n1_bytes_to_n2() {
	sessync_cli 1 --status --json 2>/dev/null | python3 -c '
import json, sys
print([p for p in json.load(sys.stdin)["peers"] if p["name"] == "n2"][0]["bytes_sent"])'
}
n1_settled() {
	[[ $(sessync_cli 1 --status --json 2>/dev/null | python3 -c '
import json, sys
print(sum(p["pending"] for p in json.load(sys.stdin)["peers"]))') == 0 ]]
}
sid=lockedBusy0123456789
f1=$(node_sess_file 1 "$sid")
f2=$(node_sess_file 2 "$sid")
check "n1: PHP writes a 64 KB session" php_session 1 "$sid" '
	$s = ""; for ($i = 0; strlen($s) < 64000; $i++) $s .= md5("busy" . $i);
	$_SESSION["counter"] = 1;
	$_SESSION["blob"] = $s;'
check "it reaches n2 and n3" wait_until "$WAIT" replicated "$sid"
check "n1 has nothing pending" wait_until "$WAIT" n1_settled
size=$(stat -c %s -- "$f1")
rm -f -- "$T/holder.locked"
_it_php 2 -r '
	session_id($argv[1]);
	if (!session_start()) exit(1);
	touch($argv[2]);
	usleep(1500000);
	session_abort();' -- "$sid" "$T/holder.locked" &
holder=$!
it_track_pid "$holder"
check "n2: a PHP request holds the session's lock for 1.5 s" wait_until 5 test -e "$T/holder.locked"
b0=$(n1_bytes_to_n2)
check "n1: PHP changes the counter meanwhile" php_session 1 "$sid" '$_SESSION["counter"]++;'
check "n2's PHP request ends normally" wait_exit "$holder" 10
check "n2 gets the change after the release" wait_until "$WAIT" files_equal "$f1" "$f2"
check "n1 has nothing pending" wait_until "$WAIT" n1_settled
b1=$(n1_bytes_to_n2)
sent=$((${b1:-0} - ${b0:-0}))
copies=$((sent / size))
it_note "for one small change, while n2's lock was held, n1 sent $sent bytes to n2 ($copies whole copies of the $size-byte file)"
if ((copies < 16)); then ok "n1 sent fewer than 16 file-sizes for a change that met a busy lock ($copies)"
else fail "n1 sent fewer than 16 file-sizes for a change that met a busy lock ($copies: whole-file re-uploads in a tight loop)"; fi

check "cluster stops cleanly" cluster_stop
it_finish
