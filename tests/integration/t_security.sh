#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# The security checks of docs/DESIGN.md "Security", on a real 3-node cluster:
#   - only PHP's own files travel ("Only PHP's own files"): a file planted in
#     n1's session dir that another uid owns, and a name hard-linked to a
#     file outside it, never reach a peer; each is logged once, by its tag,
#     and counted (--status "skipped", metrics sessync_skipped); a receiver
#     never writes into such a file, nor unlinks it on a logout;
#   - a --serve key line without --from is refused, --any-peer relays; a key
#     bound to n2 cannot be used by n3 ("Peers and keys");
#   - the socket serves root, the daemon's user and members of its group,
#     and refuses everyone else even when its mode lets them connect
#     ("The socket");
#   - a session dir others (every user, its group, an ACL) can write into,
#     or whose parent they can swap, or that another user owns, is refused at
#     start with the fix in the message ("The session directory").
# Logs never name a session in full: lib.sh checks every log at the end.
# Runs as root (chown to nobody, setpriv).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_security
it_require_daemon
it_require_tags
[[ $(id -u) == 0 ]] || it_abort "t_security runs as root (it plants files of another uid)"

WAIT=${IT_WAIT:-10}
NOBODY=65534

cluster_create 3 || it_abort "cluster_create 3"
sed -i "/^\[node\]/a metrics_file = $T/n1/sessync.prom" "$(node_conf 1)"
prom=$T/n1/sessync.prom
s1=$(node_sessions 1)
s2=$(node_sessions 2)
mkdir -p "$T/outside" "$T/stage"

# status_get I EXPR: EXPR (Python, the status object is o) on node I's
# --status --json; fails if --status fails or prints no valid JSON.
status_get() {
	local js
	js=$(sessync_cli "$1" --status --json) || return 1
	python3 -c 'import json, sys; o = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$js" "$2"
}

# plant_foreign DIR SID CONTENT: put sess_SID, owned by nobody, into DIR the
# way a local user who could write there would: made elsewhere, then moved
# in whole (so the daemon never sees it as root's).
plant_foreign() {
	printf '%s' "$3" >"$T/stage/sess_$2" &&
		chown "$NOBODY:$NOBODY" "$T/stage/sess_$2" &&
		mv "$T/stage/sess_$2" "$1/sess_$2"
}

# log_lines I TEXT: how many lines of node I's daemon.log contain TEXT.
log_lines() {
	local n
	n=$(grep -cF -- "$2" "$(node_log "$1")")
	echo "${n:-0}"
}
logged_once() { (($(log_lines "$1" "$2") >= 1)); }
logged_again() { (($(log_lines "$1" "$2") > 1)); }

# on_peers I SID: sess_SID on node I equals n1's (bytes, mtime ns).
same_on() { files_equal "$(node_sess_file 1 "$2")" "$(node_sess_file "$1" "$2")"; }
on_n2_n3() { same_on 2 "$1" && same_on 3 "$1"; }
gone_on() { [[ ! -e $(node_sess_file "$1" "$2") ]]; }

sum_of() { sha256sum <"$1"; }

# ================================================= (a) only PHP's own files travel
# A name hard-linked to a file outside the directory, there before the
# daemon starts (its start-up scan finds it).
A=planted0A1b2C3d4E5f6g7      # owned by nobody
B=hardlink0A1b2C3d4E5f6g7     # a second name of $T/outside/secret1
printf 'outside-secret\n' >"$T/outside/secret1"
ln "$T/outside/secret1" "$s1/sess_$B"
tagA=$(sid_tag $A) tagB=$(sid_tag $B)
it_note "tags: sess_$A = $tagA, sess_$B = $tagB"

cluster_start || it_abort "cluster did not start"
ok "3-node cluster started (n1 with metrics_file)"

# The foreign file arrives while the daemon runs (inotify: IN_MOVED_TO).
admin='uid|i:1;role|s:5:"admin";'
check "n1: a file of uid $NOBODY is planted as sess_$A" plant_foreign "$s1" $A "$admin"

# A real session written after both: once it is on n2 and n3, n1 has handled
# every earlier event, so anything that was going to be sent was sent.
check "n1: PHP writes the barrier session" php_session 1 secBarrier1 '$_SESSION["b"] = 1;'
check "the barrier session reaches n2 and n3" wait_until "$WAIT" on_n2_n3 secBarrier1
for i in 2 3; do
	check "n$i never got the file of uid $NOBODY (sess_$A)" gone_on "$i" $A
	check "n$i never got the hard-linked sess_$B" gone_on "$i" $B
done
assert_eq "$(find "$s2" -mindepth 1 -printf '%P\n' | paste -sd' ')" "sess_secBarrier1" \
	"n2's session dir holds the barrier session only"

owned_msg="session $tagA: owned by uid $NOBODY, not PHP's user"
links_msg="session $tagB: has 2 hard links"
check "n1 logs that sess_$A is not PHP's (by its tag)" wait_until "$WAIT" logged_once 1 "$owned_msg"
check "n1 logs that sess_$B has 2 hard links (by its tag)" wait_until "$WAIT" logged_once 1 "$links_msg"
grep -F -e "$owned_msg" -e "$links_msg" "$(node_log 1)" | sed 's/^/#   n1: /'

# The attacker writes both again: the refusal is the same, logged no more.
printf 'x|i:1;' >>"$s1/sess_$A"
touch "$s1/sess_$B"
check "n1: PHP writes a second barrier session" php_session 1 secBarrier2 '$_SESSION["b"] = 2;'
check "the second barrier reaches n2 and n3" wait_until "$WAIT" on_n2_n3 secBarrier2
check "n1 does not log sess_$A again (2 s)" not wait_until 2 logged_again 1 "$tagA"
assert_eq "$(log_lines 1 "$tagA")" 1 "n1 logged sess_$A exactly once"
assert_eq "$(log_lines 1 "$tagB")" 1 "n1 logged sess_$B exactly once"
for i in 2 3; do
	check "n$i still has neither (after they were written again)" eval "gone_on $i $A && gone_on $i $B"
done
assert_eq "$(cat "$s1/sess_$A")" "${admin}x|i:1;" "n1's planted file is left as its owner wrote it"
assert_eq "$(stat -c %u "$s1/sess_$A")" "$NOBODY" "... and still its owner's"
assert_eq "$(cat "$T/outside/secret1")" "outside-secret" "the outside file is unchanged"

assert_eq "$(status_get 1 'o["skipped"]')" 2 "n1 --status --json: \"skipped\": 2"
text=$(sessync_cli 1 --status)
assert_contains "$text" "2 files skipped" "n1 --status says 2 files skipped"
skipped_is() { grep -qx "sessync_skipped{node=\"n1\"} $1" "$prom"; }
check "metrics: sessync_skipped{node=\"n1\"} 2" wait_until 8 skipped_is 2
check "metrics: sessync_skipped_total{node=\"n1\"} 2" grep -qx 'sessync_skipped_total{node="n1"} 2' "$prom"
check "metrics: sessync_skipped is a gauge" grep -qx '# TYPE sessync_skipped gauge' "$prom"
check "metrics: sessync_skipped_total is a counter" grep -qx '# TYPE sessync_skipped_total counter' "$prom"

# Gone again: no longer skipped, and their removal is no news for anyone.
rm -f "$s1/sess_$A" "$s1/sess_$B"
check "n1: PHP writes a third barrier session" php_session 1 secBarrier3 '$_SESSION["b"] = 3;'
check "the third barrier reaches n2 and n3" wait_until "$WAIT" on_n2_n3 secBarrier3
skipped_zero() { [[ $(status_get 1 'o["skipped"]') == 0 ]]; }
check "n1 --status: \"skipped\": 0 once both are removed" wait_until "$WAIT" skipped_zero
check "metrics: sessync_skipped 0 once both are removed" wait_until 8 skipped_is 0
check "metrics: sessync_skipped_total stays 2" grep -qx 'sessync_skipped_total{node="n1"} 2' "$prom"
assert_eq "$(status_get 2 'o["tombstones"]')" 0 "n2 got no tombstone for names it never had"

# ------------------------------------------------- the receiving side (n2)
# On n2, a file of nobody and a name hard-linked to a file outside, under the
# names n1's PHP then uses: n2 must never write into either, nor unlink
# either when n1 logs out.
C=foreignN2x0123456789ab
D=linkedN2x0123456789abc
tagC=$(sid_tag $C) tagD=$(sid_tag $D)
check "n2: a file of uid $NOBODY is planted as sess_$C" plant_foreign "$s2" $C 'planted-on-n2'
printf 'victim2-content\n' >"$T/outside/victim2"
touch -d @1600000000.123456789 "$T/outside/victim2"
ln "$T/outside/victim2" "$s2/sess_$D"
ino_c=$(stat -c %i "$s2/sess_$C")
mtime_c=$(mtime_ns "$s2/sess_$C")
mtime_v=$(mtime_ns "$T/outside/victim2")
sum_v=$(sum_of "$T/outside/victim2")

check "n1: PHP writes sess_$C" php_session 1 $C '$_SESSION["user"] = "carol";'
check "n1: PHP writes sess_$D" php_session 1 $D '$_SESSION["user"] = "dave";'
check "both reach n3 (the barrier)" wait_until "$WAIT" eval "same_on 3 $C && same_on 3 $D"
check "n2 logs that sess_$C is not PHP's" wait_until "$WAIT" logged_once 2 "session $tagC: owned by uid $NOBODY"
check "n2 logs that sess_$D has 2 hard links" wait_until "$WAIT" logged_once 2 "session $tagD: has 2 hard links"
assert_eq "$(cat "$s2/sess_$C")" "planted-on-n2" "n2 did not write into the file of uid $NOBODY"
assert_eq "$(stat -c %i:%u "$s2/sess_$C"):$(mtime_ns "$s2/sess_$C")" "$ino_c:$NOBODY:$mtime_c" \
	"... same inode, owner and mtime"
assert_eq "$(sum_of "$T/outside/victim2")" "$sum_v" "n2 did not write through the hard link: outside bytes unchanged"
assert_eq "$(mtime_ns "$T/outside/victim2")" "$mtime_v" "... and its mtime unchanged"
assert_eq "$(stat -c %h "$s2/sess_$D")" 2 "n2's hard link is left as it was"
assert_eq "$(status_get 2 'o["skipped"]')" 2 "n2 --status --json: \"skipped\": 2"
err=$(status_get 1 '[p["last_error"] for p in o["peers"] if p["name"] == "n2"][0]')
it_note "n1's last_error for n2: $err"
if [[ $err == *"refused there"* && ($err == *"$tagC"* || $err == *"$tagD"*) && $err != *sess_* ]]; then
	ok "n1's status for n2: refused there, naming the session by its tag"
else
	fail "n1's status for n2: refused there, naming the session by its tag"
fi

check "n1: PHP destroys sess_$C" php_destroy 1 $C
check "n1: PHP destroys sess_$D" php_destroy 1 $D
check "both logouts reach n3 (the barrier)" wait_until "$WAIT" eval "gone_on 3 $C && gone_on 3 $D"
check "n2 did not unlink the file of uid $NOBODY" test "$(cat "$s2/sess_$C" 2>/dev/null)" = planted-on-n2
# A hard-linked name is PHP's session still (PHP does not count links): the
# logout removes that name, and nothing is written through the other.
check "n2 unlinked the hard-linked name (the logout took effect)" wait_until "$WAIT" test ! -e "$s2/sess_$D"
assert_eq "$(sum_of "$T/outside/victim2"):$(stat -c %h "$T/outside/victim2")" "$sum_v:1" \
	"... the outside name stays, its bytes unchanged"
assert_eq "$(log_lines 2 "$tagC: owned by")" 1 "n2 logged sess_$C exactly once"
assert_eq "$(log_lines 2 "$tagD: has 2 hard links")" 1 "n2 logged sess_$D exactly once"
rm -f "$s2/sess_$C" "$s2/sess_$D"
for i in 1 2 3; do check "n$i's daemon is still running" daemon_running "$i"; done

# ================================================= (d) --serve needs --from, or --any-peer
out=$("$SESSYNCD" -c "$(node_conf 2)" --serve </dev/null 2>&1)
assert_eq "$?" 2 "--serve without --from exits 2"
assert_contains "$out" "needs --from PEER" "... saying it needs --from"
assert_contains "$out" "--any-peer" "... or --any-peer"
out=$("$SESSYNCD" -c "$(node_conf 2)" --serve --from n1 --any-peer </dev/null 2>&1)
assert_eq "$?" 2 "--serve with both --from and --any-peer exits 2"
assert_contains "$out" "exclude each other" "... saying they exclude each other"

# n1's key on n2 forced to a bare --serve: n1 cannot reach n2.
ak2=$T/n2/sshd/authorized_keys
sed -i "s| --serve --from n1\"| --serve\"|" "$ak2"
assert_eq "$(grep -c -- '--serve",restrict .* n1$' "$ak2")" 1 "n2's key line for n1 now forces a bare --serve"
daemon_stop 1 >/dev/null
check "n1's daemon restarts" daemon_start 1
check "n1: PHP writes sess_serve1" php_session 1 serve1 '$_SESSION["s"] = 1;'
check "sess_serve1 reaches n3" wait_until "$WAIT" same_on 3 serve1
check "n1 logs the relay's refusal on n2 (remote: ... needs --from)" \
	wait_until "$WAIT" logged_once 1 'peer "n2": remote: sessyncd --serve: needs --from PEER'
check "sess_serve1 did not reach n2" gone_on 2 serve1

# ... and with --any-peer it relays.
sed -i "s| --serve\"| --serve --any-peer\"|" "$ak2"
assert_eq "$(grep -c -- '--serve --any-peer",restrict .* n1$' "$ak2")" 1 "n2's key line for n1 now says --any-peer"
daemon_stop 1 >/dev/null   # a fresh start: no reconnect backoff to wait out
check "n1's daemon restarts" daemon_start 1
check "with --any-peer, sess_serve1 reaches n2" wait_until "$WAIT" same_on 2 serve1
check "n1: PHP writes sess_serve2" php_session 1 serve2 '$_SESSION["s"] = 2;'
check "... and so does a new session" wait_until "$WAIT" same_on 2 serve2
sed -i "s| --serve --any-peer\"| --serve --from n1\"|" "$ak2"

# ================================================= (e) a key bound to n2 cannot be used by n3
# n3's key on n1, bound to n2 (a stolen key of n2, or a mistake): n3 says
# HELLO as n3 through a relay that is n2's.
ak1=$T/n1/sshd/authorized_keys
sed -i "/ n3\$/s| --serve --from n3\"| --serve --from n2\"|" "$ak1"
assert_eq "$(grep -c -- '--serve --from n2",restrict .* n3$' "$ak1")" 1 "n1's key line for n3 now says --from n2"
daemon_stop 3 >/dev/null
check "n3's daemon restarts" daemon_start 3
check "n1 refuses n3 on a relay bound to n2" \
	wait_until "$WAIT" logged_once 1 'this key may only be used by "n2", not "n3"'
check "n3 logs n1's refusal" wait_until "$WAIT" logged_once 3 'peer "n1": refused by the peer: this key may only be used by "n2", not "n3"'
n2_up() { [[ $(status_get 2 '[p["connected"] for p in o["peers"] if p["name"] == "n1"][0]') == True ]]; }
check "the real n2 is still connected to n1" wait_until "$WAIT" n2_up
sed -i "/ n3\$/s| --serve --from n2\"| --serve --from n3\"|" "$ak1"
daemon_stop 3 >/dev/null
check "n3's daemon restarts with its own key line back" daemon_start 3

# ================================================= (c) who may use the socket
sock=$(node_sock 1)
assert_eq "$(stat -c %a "$sock")" 660 "the socket is created 0660"
sock_gid=$(stat -c %g "$sock")
it_note "n1's socket: $(stat -c '%U:%G (gid %g) %a' "$sock")"
# Let anyone reach and connect to it, so that only the daemon's own check
# stands between nobody and the socket.
t_mode=$(stat -c %a "$T")
chmod 0711 "$T"
chmod 0666 "$sock"
out=$(timeout 10 setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$SESSYNCD" -c "$(node_conf 1)" --status 2>&1)
assert_eq "$?" 1 "--status as uid $NOBODY (not in the socket's group) exits 1"
it_note "it says: $out"
check "n1 logs the refused client" wait_until "$WAIT" logged_once 1 "socket: refused a client of uid $NOBODY"
# Refused again and again: each time exit 1 (not killed by SIGPIPE writing
# its request to a connection the daemon closed), logged once.
codes=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
	timeout 10 setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$SESSYNCD" -c "$(node_conf 1)" --status \
		>/dev/null 2>&1
	codes+="$? "
done
assert_eq "$codes" "1 1 1 1 1 1 1 1 1 1 " "... and 10 more times, each exits 1"
assert_eq "$(log_lines 1 "socket: refused a client of uid $NOBODY")" 1 "... logged once, not per attempt"
out=$(timeout 10 setpriv --reuid=$NOBODY --regid="$sock_gid" --clear-groups "$SESSYNCD" -c "$(node_conf 1)" --status 2>&1)
assert_eq "$?" 0 "--status as uid $NOBODY with the socket's group (gid $sock_gid) as its group is served"
assert_contains "$out" "node n1:" "... with n1's status"
out=$(timeout 10 setpriv --reuid=$NOBODY --regid=$NOBODY --groups="$sock_gid" "$SESSYNCD" -c "$(node_conf 1)" --status 2>&1)
assert_eq "$?" 0 "--status as uid $NOBODY with the socket's group as a supplementary group is served"
assert_contains "$out" "node n1:" "... with n1's status"
chmod 0660 "$sock"
chmod "$t_mode" "$T"

# ================================================= (b) the session directory
daemon_stop 1 >/dev/null
# start_refused LABEL: n1's daemon, run in the foreground, exits 1 at start;
# its output goes to $T/strict-LABEL.log (a log lib.sh checks for ids too).
start_refused() {
	local rc=0
	timeout 20 "$SESSYNCD" -c "$(node_conf 1)" </dev/null >"$T/strict-$1.log" 2>&1 || rc=$?
	[[ $rc == 1 ]] || { echo "#   exit $rc, not 1"; return 1; }
}
fix_line="tmpfs $s1 tmpfs uid=root,gid=root,mode=0700"
for mode in 1733 0777; do
	chmod "$mode" "$s1"
	check "session dir mode $mode: the daemon exits 1 at start" start_refused "$mode"
	check "... saying every user can write it" grep -qF "is writable by every user (mode $mode)" "$T/strict-$mode.log"
	check "... with the fstab line that fixes it ($fix_line,...)" grep -qF "$fix_line" "$T/strict-$mode.log"
	check "... in /etc/fstab" grep -qF "/etc/fstab" "$T/strict-$mode.log"
	check "... and no socket answers" not eval 'sessync_cli 1 --status >/dev/null 2>&1'
done
sed 's/^/#   /' "$T/strict-1733.log"
chmod 0700 "$s1"

# A parent others can write without the sticky bit could swap the directory.
p_mode=$(stat -c %a "$T/n1")
chmod 0777 "$T/n1"
check "a parent of mode 0777: the daemon exits 1 at start" start_refused parent
check "... naming the parent" grep -qF "\"$T/n1\" is writable by every user (mode 0777)" "$T/strict-parent.log"
check "... with the fstab line" grep -qF "$fix_line" "$T/strict-parent.log"
chmod 1777 "$T/n1"
check "a sticky parent of mode 1777 is accepted: the daemon starts" daemon_start 1
daemon_stop 1 >/dev/null
chmod "$p_mode" "$T/n1"

# An owner that is neither root nor PHP's user could plant sessions.
sed "/^\[node\]/a php_user = root" "$(node_conf 1)" >"$T/n1/owner.conf"
chown "$NOBODY" "$s1"
rc=0
timeout 20 "$SESSYNCD" -c "$T/n1/owner.conf" </dev/null >"$T/strict-owner.log" 2>&1 || rc=$?
assert_eq "$rc" 1 "a session dir owned by uid $NOBODY (php_user = root): the daemon exits 1 at start"
check "... saying neither root nor PHP's user owns it" grep -qF "neither root nor PHP's user" "$T/strict-owner.log"
chown root "$s1"

# Group-writable: refused too (the group could plant a session, or rename
# PHP's file to an id it knows).
chmod 0770 "$s1"
check "session dir mode 0770: the daemon exits 1 at start" start_refused group
check "... saying its group can write it" grep -qF "is writable by its group (or an ACL) (mode 0770)" "$T/strict-group.log"
check "... with the fstab line" grep -qF "$fix_line" "$T/strict-group.log"

# An ACL that lets nobody write (setfacl -m u:nobody:rwx, set as the raw
# xattr: the acl package is not needed). The check is made on the test's
# own precondition first: nobody can create a file there.
chmod 0700 "$s1"
set_acl() {
	python3 - "$1" <<-'PY'
		import os, struct, sys
		e = lambda tag, perm, id: struct.pack("<HHI", tag, perm, id)
		anyone = 0xFFFFFFFF
		acl = struct.pack("<I", 2) + e(0x01, 7, anyone) + e(0x02, 7, 65534) + e(0x04, 0, anyone) \
		    + e(0x10, 7, anyone) + e(0x20, 0, anyone)
		os.setxattr(sys.argv[1], "system.posix_acl_access", acl)
	PY
}
t_mode=$(stat -c %a "$T")
chmod 0711 "$T"
if set_acl "$s1" && setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups touch "$s1/acl-probe" 2>/dev/null; then
	rm -f "$s1/acl-probe"
	ok "an ACL on n1's session dir lets uid $NOBODY create files in it"
	check "session dir with that ACL: the daemon exits 1 at start" start_refused acl
	check "... saying its group (the ACL's mask) can write it" grep -qF 'writable by its group (or an ACL)' "$T/strict-acl.log"
	check "... the fix says to remove the ACL (setfacl -b)" grep -qF "setfacl -b $s1" "$T/strict-acl.log"
else
	fail "an ACL on n1's session dir lets uid $NOBODY create files in it"
fi
chmod "$t_mode" "$T"
python3 -c 'import os, sys; os.removexattr(sys.argv[1], "system.posix_acl_access")' "$s1" 2>/dev/null
chmod 0700 "$s1"

# Group-readable: refused as well, the file names are the session ids.
chmod 0750 "$s1"
check "session dir mode 0750: the daemon exits 1 at start" start_refused groupread
check "... saying others can list the session ids" grep -qF "readable by others (or an ACL) (mode 0750)" "$T/strict-groupread.log"

# A symlink on the configured path: refused, with the real path to use.
chmod 0700 "$s1"
ln -s "$s1" "$T/n1/sessions-link"
sed "s#^session_dir *=.*#session_dir = $T/n1/sessions-link#" "$(node_conf 1)" >"$T/n1/link.conf"
rc=0
timeout 20 "$SESSYNCD" -c "$T/n1/link.conf" </dev/null >"$T/strict-link.log" 2>&1 || rc=$?
assert_eq "$rc" 1 "session_dir through a symlink: the daemon exits 1 at start"
check "... naming the real path to use" grep -qF "is not its real path \"$s1\"" "$T/strict-link.log"
rm -f "$T/n1/sessions-link"

check "n1 starts again on its 0700 session dir" daemon_start 1
check "n1: PHP writes sess_group1" php_session 1 group1 '$_SESSION["g"] = 1;'
check "... and it replicates" wait_until "$WAIT" on_n2_n3 group1

check "cluster stops cleanly (every daemon exits 0 on SIGTERM)" cluster_stop
it_finish
