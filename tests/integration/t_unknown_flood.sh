#!/usr/bin/env bash
# Names never seen (docs/DESIGN.md "Names never seen"). n3's key is stolen:
# a hostile client relays as n3 on n1's socket and sends 400 FILEs of
# 100,000 DELETEs for random names, as fast as the socket takes them, then
# 400 FILEs of 64 KiB for new names (25 MiB, for a 16 MiB session tmpfs). On main this left 100,000 tombstones (29 MB RSS,
# 9.3 MB of journal, pushed on by catch-up). Now: n1 keeps at most 32,768
# of them (the oldest forgotten under a watermark), takes at most the
# peer's budget (32,768 at once, 1,000 a second), answers the rest RETRY
# and counts it (refused_new); the session tmpfs keeps 1/16 free for PHP;
# the honest n2 keeps replicating during the flood; a real logout made
# during the flood stays a logout, and so does a forgotten one, against an
# older copy the hostile peer sends afterwards.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_unknown_flood
it_require_daemon
command -v xxhsum >/dev/null || it_abort "xxhsum is missing (package xxhash)"

cluster_create 3 || it_abort "cluster setup failed"
s1=$(node_sessions 1)
it_mount_tmpfs "$s1" 16m || it_abort "cannot mount a tmpfs on $s1"
for i in 1 2; do node_conf_set "$i" log_level info; node_conf_set "$i" resync_interval 3s; done
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"
daemon_start 1 && daemon_start 2 || it_abort "daemons did not start"   # n3 stays down: its key is the attacker's

xxh3() { printf '%s' "$1" | xxhsum -H3 | sed -E 's/^XXH3 \(stdin\) = //; s/ .*//'; }
xx64k=$(head -c 65536 /dev/zero | tr '\0' x)
hash64k=$(xxh3 "$xx64k")
[[ $hash64k =~ ^[0-9a-f]{16}$ ]] || it_abort "xxhsum output not understood: $hash64k"
json1() { sessync_cli 1 --status --json; }
field() { json1 | python3 -c "import json, sys; o = json.load(sys.stdin); print($1)"; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$(daemon_pid 1)/status"; }

php_session 2 victim1 '$_SESSION["user"] = "alice";' || it_abort "PHP on n2 failed"
vf1=$(node_sess_file 1 victim1)
check "an honest session replicates n2 -> n1" wait_until 10 files_equal "$(node_sess_file 2 victim1)" "$vf1"
old_mtime=$(mtime_ns "$vf1")
rss0=$(rss_kb)
j0=$(stat -c %s "$(node_state 1)/journal")

acks() { python3 -c "import json, sys; o = json.load(open(sys.argv[1])); print(o['acks'].get(sys.argv[2], 0))" "$T/$1.json" "$2"; }

start=$(now_ms)
stamp=$(( ($(now_ms) - 10000) * 1000000 ))   # logouts from 10 s ago: older than what n2 writes next
# Each a little later than the one before: none is covered by what the
# watermark already holds, so each takes from the budget.
python3 "$here/hostile_peer.py" "$(node_sock 1)" n3 n1 --deletes 100000 --stamp-ns "$stamp" --stamp-step 1000 \
	--timeout 120 >"$T/flood.json" 2>>"$T/flood.err" &
flood=$!
it_track_pid "$flood"
# Meanwhile the honest peer writes and logs out.
for k in 1 2 3 4 5; do
	php_session 2 "during$k" '$_SESSION["n"] = 1;' || fail "PHP on n2 failed"
done
php_destroy 2 victim1 || fail "session_destroy on n2 failed"
wait "$flood"
secs=$(( ($(now_ms) - start + 999) / 1000 ))
it_note "flood: $(cat "$T/flood.json") in ~${secs} s"
check "every flood frame was answered" python3 -c "import json, sys; o = json.load(open(sys.argv[1])); sys.exit(o['answered'] != o['sent'])" "$T/flood.json"

for k in 1 2 3 4 5; do
	check "n2's session during$k reached n1 during the flood" \
	  wait_until 10 files_equal "$(node_sess_file 2 during$k)" "$(node_sess_file 1 during$k)"
done
check "the logout made during the flood reached n1" wait_until 10 not test -e "$vf1"

kept=$(acks flood delete:ok)
budget=$((32768 + 1000 * (secs + 1)))
cap=32768
tombs=$(field 'o["tombstones"]')
it_note "n1: $tombs tombstones, $kept DELETEs taken of 100000, $(field 'o["unseen_forgotten"]') forgotten, refused_new from n3: $(field 'o["peers"][1]["refused_new"]')"
check "the hostile DELETEs taken stay within the budget ($kept <= $budget)" test "$kept" -le "$budget"
check "n1's tombstones stay within the bound ($tombs <= $cap + 10)" test "$tombs" -le $((cap + 10))
check "the oldest were forgotten under the watermark" test "$(field 'o["unseen_forgotten"]')" -gt 0
check "the rest was answered RETRY" test "$(acks flood delete:retry)" -ge $((100000 - budget))
check "and counted as refused_new for n3" test "$(field 'o["peers"][1]["refused_new"]')" -ge $((100000 - budget))
check "n2 has nothing refused" test "$(field 'o["peers"][0]["refused_new"]')" = 0

j1=$(stat -c %s "$(node_state 1)/journal")
rss1=$(rss_kb)
it_note "journal ${j0} -> ${j1} bytes, RSS ${rss0} -> ${rss1} kB"
check "the journal grew by less than 6 MB" test $((j1 - j0)) -lt 6000000
check "RSS grew by less than 24 MB" test $((rss1 - rss0)) -lt 24000

# New files: created only while 1/16 of the 16 MiB tmpfs stays free.
python3 "$here/hostile_peer.py" "$(node_sock 1)" n3 n1 --files 400 --file-size 65536 --file-hash "$hash64k" \
	>"$T/files.json" 2>>"$T/flood.err"
read -r size avail < <(df -B1 --output=size,avail "$s1" | tail -1)
it_note "files: $(cat "$T/files.json"); tmpfs ${avail} of ${size} bytes free"
check "new files were taken until the reserve ($(acks files file:ok) of 400)" test "$(acks files file:ok)" -ge 100
check "the session tmpfs keeps 1/16 free" test "$avail" -ge $((size / 16 - 65536))
check "FILEs past the reserve were answered RETRY" test "$(acks files file:retry)" -gt 0
php_session 1 localwrite '$_SESSION["still"] = "works";' || fail "PHP on n1 failed"
check "PHP on n1 can still write" test -s "$(node_sess_file 1 localwrite)"
# An honest new session waits (RETRY, counted) while the reserve is all
# that is left, and arrives once there is room (PHP's GC, here rm).
# 100 KB: more than the flood's last 64 KiB file can leave above the reserve
# (the reserve is what is left after the write).
php_session 2 afterfull '$_SESSION["n"] = str_repeat("a", 100000);' || fail "PHP on n2 failed"
check "an honest new session waits while n1 is at its reserve" \
  wait_until 20 test "$(field 'o["peers"][0]["refused_new"]')" -gt 0
check "and is not there yet" not test -e "$(node_sess_file 1 afterfull)"
find "$s1" -name 'sess_hf*' -delete
check "it arrives once there is room again" wait_until 10 files_equal "$(node_sess_file 2 afterfull)" "$(node_sess_file 1 afterfull)"

# Afterwards the hostile peer sends an older copy of the logged-out session,
# and one of the first name it flooded (forgotten early: the watermark).
python3 "$here/hostile_peer.py" "$(node_sock 1)" n3 n1 --file "sess_victim1:$old_mtime:$(xxh3 xxxxxxxx):8" \
	--file "sess_hd00000000:$((stamp - 1000000000)):$(xxh3 xxxxxxxx):8" >"$T/late.json" 2>>"$T/flood.err"
it_note "late copies: $(cat "$T/late.json")"
check "an older copy of a logged-out session is refused (stale)" test "$(acks late file:stale)" = 2
check "the forgotten logout does not come back either" not test -e "$s1/sess_hd00000000"
check "the logout holds on n1" not test -e "$vf1"
sleep 4   # a periodic catch-up both ways (resync_interval 3 s)
check "and after catch-up, on both" eval 'test ! -e "$vf1" && test ! -e "$(node_sess_file 2 victim1)"'
# What n1 kept goes on to n2 by catch-up, bounded by what n1 kept.
t2=$(sessync_cli 2 --status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["tombstones"])')
it_note "n2 holds $t2 tombstones"
t1=$(field 'o["tombstones"]')
check "n2's tombstones are bounded by n1's ($t2 <= $t1 + 10)" test "$t2" -le $((t1 + 10))
it_finish
