#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# Create, update, touch-only and destroy, each done by real PHP, replicate in
# every direction of a 3-node cluster: on every other node the bytes are
# equal and the mtime is equal to the nanosecond (docs/DESIGN.md "Applying in place":
# GC reads it). An update is applied in place (same inode: a PHP request
# holding the old inode must see it). A session changed by PHP on a node that
# only holds a replica travels on from there. Files that are not sessions
# (wrong name, symlink, directory) never replicate and disturb nothing, and
# nothing is written outside the session directories.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_replicate
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-10}   # seconds for one change to reach every node (2-core CI)
N=3

cluster_create $N || it_abort "cluster_create $N"

# Everything a node may legitimately write, relative to $T/nI/: the session
# dir (replicas), state_dir (tombstones), its socket, its log and pid. Any
# other file under $T that is new or changed after this mark was written by
# something else (checked at the end).
touch "$T/.mark"
sleep 0.01   # the mark's mtime must be older than anything written from here on
passwd_sum=$(sha256sum /etc/passwd)

# Junk in n1's session dir before the daemons start (the start-up scan sees
# it) ...
s1=$(node_sessions 1)
echo "not a session" >"$s1/notes.txt"
echo "bad|s:1:\"x\";" >"$s1/sess_bad.name"
ln -s /etc/passwd "$s1/sess_link"
mkdir "$s1/sess_dir"

cluster_start || it_abort "cluster did not start"
ok "3-node cluster started"

# others O: every node but O.
others() {
	local i
	for ((i = 1; i <= N; i++)); do ((i != $1)) && echo "$i"; done
}

# replicated O SID: SID's file on every other node equals O's (bytes, mtime ns).
replicated() {
	local o=$1 sid=$2 p
	for p in $(others "$o"); do
		files_equal "$(node_sess_file "$o" "$sid")" "$(node_sess_file "$p" "$sid")" || return 1
	done
}

# gone_everywhere SID: no node has SID's file.
gone_everywhere() {
	local i
	for ((i = 1; i <= N; i++)); do
		[[ -e $(node_sess_file "$i" "$1") ]] && return 1
	done
	return 0
}

# inodes O SID: "node:inode ..." of SID on every node but O ("node:missing"
# for a node without the file).
inodes() {
	local p out="" ino
	for p in $(others "$1"); do
		ino=$(stat -c %i -- "$(node_sess_file "$p" "$2")" 2>/dev/null) || ino=missing
		out+="$p:$ino "
	done
	echo "$out"
}

# assert_same_inodes O SID BEFORE DESC: SID has the inodes BEFORE on every
# node but O. Fails, rather than comparing two "missing", when BEFORE lacks
# a replica.
assert_same_inodes() {
	if [[ $3 == *missing* ]]; then
		fail "$4"
		echo "#   no inode to compare with: $3"
		return
	fi
	assert_eq "$(inodes "$1" "$2")" "$3" "$4"
}

# modes O SID: "node:mode ..." of SID on every node but O.
modes() {
	local p out=""
	for p in $(others "$1"); do
		out+="$p:$(stat -c %a -- "$(node_sess_file "$p" "$2")" 2>/dev/null) "
	done
	echo "$out"
}

# expect_modes O SID: the string modes prints when every replica is 0600.
expect_modes() {
	local p out=""
	for p in $(others "$1"); do out+="$p:600 "; done
	echo "$out"
}

# ------------------------------------------------ each node originates in turn
for o in 1 2 3; do
	sid="rep${o}Abc-def,0123456789"
	f=$(node_sess_file "$o" "$sid")

	check "n$o: PHP creates sess_$sid" php_session "$o" "$sid" \
		'$_SESSION["user"] = "user'"$o"'"; $_SESSION["n"] = 1;'
	check "n$o create: on $(others "$o" | sed 's/^/n/' | paste -sd' ') bytes and mtime ns equal" \
		wait_until "$WAIT" replicated "$o" "$sid"
	assert_eq "$(modes "$o" "$sid")" "$(expect_modes "$o" "$sid")" "n$o create: replicas are 0600"
	ino_before=$(inodes "$o" "$sid")
	old=$(cat "$f")

	check "n$o: PHP updates sess_$sid" php_session "$o" "$sid" \
		'$_SESSION["n"]++; $_SESSION["cart"] = ["apple", "pear"];'
	new=$(cat "$f")
	if [[ $new != "$old" ]]; then ok "n$o update: content changed"; else fail "n$o update: content changed"; fi
	check "n$o update: bytes and mtime ns equal on every other node" \
		wait_until "$WAIT" replicated "$o" "$sid"
	assert_same_inodes "$o" "$sid" "$ino_before" "n$o update: applied in place on the receivers (same inodes)"

	cp -p -- "$f" "$T/before_touch"
	m0=$(mtime_ns "$f")
	check "n$o: PHP touch-only request on sess_$sid" php_touch "$o" "$sid"
	m1=$(mtime_ns "$f")
	if [[ $m1 != "$m0" ]]; then ok "n$o touch: mtime changed here ($m0 -> $m1)"; else fail "n$o touch: mtime changed here (still $m0)"; fi
	check "n$o touch: content unchanged here" cmp -s -- "$f" "$T/before_touch"
	check "n$o touch: mtime ns and bytes equal on every other node" \
		wait_until "$WAIT" replicated "$o" "$sid"
	ok_all=1
	for p in $(others "$o"); do
		cmp -s -- "$(node_sess_file "$p" "$sid")" "$T/before_touch" || ok_all=0
	done
	if ((ok_all)); then ok "n$o touch: content unchanged on the receivers"; else fail "n$o touch: content unchanged on the receivers"; fi
	assert_same_inodes "$o" "$sid" "$ino_before" "n$o touch: same inodes on the receivers"

	check "n$o: PHP session_destroy() on sess_$sid" php_destroy "$o" "$sid"
	check "n$o destroy: sess_$sid gone on every node" wait_until "$WAIT" gone_everywhere "$sid"
done

# ------------------------------------------------ one session roaming between nodes
# A replica that PHP then changes is a local change of that node: it must be
# pushed from there (the no-echo rule covers only the daemon's own applies).
sid="roam0123456789abcdef"
check "roam: n1 creates" php_session 1 "$sid" '$_SESSION["step"] = 1;'
check "roam: create from n1 reaches n2, n3" wait_until "$WAIT" replicated 1 "$sid"
check "roam: n2 updates its replica" php_session 2 "$sid" '$_SESSION["step"] = 2;'
check "roam: update from n2 reaches n1, n3" wait_until "$WAIT" replicated 2 "$sid"
check "roam: n3 updates its replica" php_session 3 "$sid" '$_SESSION["step"] = 3; $_SESSION["x"] = "y";'
check "roam: update from n3 reaches n1, n2" wait_until "$WAIT" replicated 3 "$sid"
assert_eq "$(php_read 1 "$sid" | tr -d ' \n')" "array('step'=>3,'x'=>'y',)" "roam: PHP on n1 reads n3's update"
check "roam: n1 touch-only" php_touch 1 "$sid"
check "roam: touch from n1 reaches n2, n3" wait_until "$WAIT" replicated 1 "$sid"
check "roam: n2 destroys" php_destroy 2 "$sid"
check "roam: destroy from n2 removes it everywhere" wait_until "$WAIT" gone_everywhere "$sid"

# ------------------------------------------------ files that are not sessions
# ... and more junk while the daemons run (inotify sees it), including
# writes to the names already there.
echo "more notes" >>"$s1/notes.txt"
echo "rewritten" >"$s1/sess_bad.name"
touch -h "$s1/sess_link"                 # IN_ATTRIB on the symlink itself
echo "x" >"$s1/sess_dir/sess_inner"      # a file in a subdirectory
echo "x" >"$s1/sess_tmp~"
echo "x" >"$s1/sess_"                    # prefix with an empty id
echo "x" >"$s1/sess_has space"
echo "x" >"$s1/.sess_hidden"
echo "x" >"$s1/SESS_upper"

# On n3 a symlink with a valid session name that points outside: a replica
# must never be written through it (O_NOFOLLOW).
mkdir "$T/outside"
echo "victim content" >"$T/outside/victim"
victim_sum=$(sha256sum "$T/outside/victim")
ln -s "$T/outside/victim" "$(node_sessions 3)/sess_trap"
check "n1: PHP creates sess_trap (n3 has a symlink by that name)" php_session 1 trap '$_SESSION["a"] = 1;'

# A real session written after all the junk: once it has arrived, every
# earlier event on n1 has been handled.
marker="marker0123456789"
check "n1: PHP creates the marker session after the junk" php_session 1 "$marker" '$_SESSION["m"] = 1;'
check "marker replicates to n2, n3 (the junk disturbed nothing)" wait_until "$WAIT" replicated 1 "$marker"
check "sess_trap reached n2" wait_until "$WAIT" files_equal "$(node_sess_file 1 trap)" "$(node_sess_file 2 trap)"

for p in 2 3; do
	sp=$(node_sessions "$p")
	junk=""
	for name in notes.txt sess_bad.name sess_link sess_dir "sess_tmp~" sess_ "sess_has space" .sess_hidden SESS_upper; do
		[[ -e $sp/$name || -L $sp/$name ]] && junk+=" $name"
	done
	assert_eq "$junk" "" "n$p: none of n1's non-session files was replicated"
done
# n2's and n3's session dirs hold only session files (no temp files left
# by an apply): exactly the marker, sess_trap (n2) / the trap symlink (n3).
assert_eq "$(find "$(node_sessions 2)" -mindepth 1 -maxdepth 1 -printf '%P\n' | sort | paste -sd' ')" "sess_$marker sess_trap" \
	"n2's session dir holds exactly the replicated sessions"
check "n3's sess_trap is still the symlink (not replaced or followed)" test -L "$(node_sessions 3)/sess_trap"
assert_eq "$(sha256sum "$T/outside/victim")" "$victim_sum" "the file n3's symlink points to is unchanged"
assert_eq "$(find "$(node_sessions 3)" -mindepth 1 -maxdepth 1 -printf '%P\n' | sort | paste -sd' ')" "sess_$marker sess_trap" \
	"n3's session dir holds exactly the marker and the symlink"
check "n1's symlink sess_link is still a symlink to /etc/passwd" \
	test "$(readlink "$s1/sess_link")" = /etc/passwd
assert_eq "$(sha256sum /etc/passwd)" "$passwd_sum" "/etc/passwd unchanged"
assert_eq "$(cat "$s1/sess_bad.name")" "rewritten" "n1's sess_bad.name left as written"
assert_eq "$(cat "$s1/sess_dir/sess_inner")" "x" "n1's sess_dir/sess_inner left as written"
check "n1's sess_dir is still a directory" test -d "$s1/sess_dir"

for i in 1 2 3; do
	check "n$i's daemon is still running" daemon_running "$i"
done

# n3 cannot take sess_trap: the name is a symlink there, a permanent state
# until someone removes it, not a transient failure such as a full disk. It
# should say so once (docs/STYLE.md "Logging": each failure once) and n1's status
# should not send the operator looking at the disk. Logs name it by its tag.
trap_tag=$(sid_tag trap)
trap_reports() { grep -F "session $trap_tag" "$(node_log 3)" | grep -vc ' debug: '; }
trap_reported() { (($(trap_reports) >= 1)); }
trap_reported_again() { (($(trap_reports) > 1)); }
check "n3 reports the refused sess_trap" wait_until "$WAIT" trap_reported
check "n3 does not report the refused sess_trap again and again (2.5 s)" \
	not wait_until 2.5 trap_reported_again
assert_eq "$(trap_reports)" 1 "n3 reported the refused sess_trap exactly once"
grep -F "session $trap_tag" "$(node_log 3)" | grep -v ' debug: ' | head -n 3 | sed 's/^/#   /'

# n1's status must answer, in JSON, with a peer n3 whose last_error is a
# string or null; only then can it be judged.
status_rc=0
status_json=$(sessync_cli 1 --status --json) || status_rc=$?
n3_err=""
if ((status_rc != 0)); then
	fail "n1's --status --json answers (exit $status_rc)"
elif ! n3_err=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
p = [p for p in d["peers"] if p["name"] == "n3"]
assert len(p) == 1, "no single peer n3 in %r" % d["peers"]
e = p[0]["last_error"]
assert e is None or isinstance(e, str), "last_error is %r" % (e,)
print(e or "")' "$status_json"); then
	fail "n1's --status --json answers with valid JSON listing peer n3"
	printf '#   output: %q\n' "$status_json"
	status_rc=1
else
	ok "n1's --status --json answers with valid JSON listing peer n3"
fi
it_note "n1's last_error for n3: ${n3_err:-(none)}"
if ((status_rc != 0)); then
	fail "n1's status for n3 does not blame a full disk for the refused symlink (no status to judge)"
elif [[ $n3_err == *"disk full"* ]]; then
	fail "n1's status for n3 does not blame a full disk for the refused symlink"
else ok "n1's status for n3 does not blame a full disk for the refused symlink"; fi

# ------------------------------------------------ nothing written elsewhere
# Every file under $T changed since the mark, minus what a node may write.
# $T/before_touch was written after the mark: find must list it (else the
# comparison with the mark did not work and an empty list proves nothing).
check "the mark is still there" test -f "$T/.mark"
stray=$(find "$T" -newer "$T/.mark" ! -type d ! -path "$T/.mark" \
	! -path "$T/n*/sessions/*" ! -path "$T/n*/state/*" \
	! -path "$T/n*/daemon.log" ! -path "$T/n*/daemon.pid" ! -path "$T/n*/sessync.sock" \
	! -path "$T/n*/sshd/log" ! -path "$T/n*/sshd/pid" ! -path "$T/n*/sshd/sshd.pid" \
	! -path "$T/outside/victim" 2>/dev/null | sort)
if grep -qxF -- "$T/before_touch" <<<"$stray"; then
	ok "find -newer the mark lists a file written after it"
else
	fail "find -newer the mark lists a file written after it"
fi
stray=$(grep -vxF -- "$T/before_touch" <<<"$stray" | paste -sd' ')
assert_eq "$stray" "" "no file under \$T outside session/state dirs was written"
stray=$(find /tmp -maxdepth 1 -name 'sess_*' -newer "$T/.mark" 2>/dev/null | paste -sd' ')
assert_eq "$stray" "" "no sess_* file appeared in /tmp"
[[ -n ${HOME:-} && -d $HOME ]] && {
	stray=$(find "$HOME" -maxdepth 2 -newer "$T/.mark" -name 'sess_*' 2>/dev/null | paste -sd' ')
	assert_eq "$stray" "" "no sess_* file appeared in \$HOME"
}
# Every file in a state dir is the daemon's own, never a copy of a session.
# grep: 1 = no match (the pass), 0 = a match, 2 = it could not read them.
for i in 1 2 3; do
	check "n$i's state dir holds its journal" test -s "$(node_state "$i")/journal"
done
copies_rc=0
copies=$(grep -rl -e user1 -e cart -e step "$T"/n*/state) || copies_rc=$?
if ((copies_rc == 1)); then
	ok "no session content was written into a state dir"
else
	fail "no session content was written into a state dir"
	echo "#   grep exit $copies_rc: ${copies//$'\n'/ }"
fi

check "cluster stops cleanly (every daemon exits 0 on SIGTERM)" cluster_stop
it_finish
