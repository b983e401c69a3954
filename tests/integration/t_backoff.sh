#!/usr/bin/env bash
# Unreadable and long-locked files (docs/DESIGN.md "Change detection"):
# one warning per name, then quiet until the file changes; looked at again
# with backoff, not every second or every 5 ms; counted in --status. n1's
# daemon runs as PHP's user (www-data), as the systemd unit runs it: a root
# daemon reads mode-000 files, www-data does not, which is how a file
# becomes unreadable in production (an operator's chmod, a file another
# user made). A lock held for seconds costs a bounded number of looks, and
# the change replicates once it is released.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_backoff
it_require_daemon
PHPU=www-data
id -u $PHPU >/dev/null 2>&1 || it_abort "no user $PHPU"
command -v setpriv >/dev/null || it_abort "setpriv (util-linux) is missing"
command -v flock >/dev/null || it_abort "flock (util-linux) is missing"
as_php() { setpriv --reuid=$PHPU --regid=$PHPU --clear-groups -- "$@"; }

cluster_create 2 || it_abort "cluster setup failed"
d1=$(node_dir 1)
s1=$(node_sessions 1)
# n1 is PHP's: its session and state directories, its key, the directory
# its socket is made in. $T only needs to be passable.
chmod 0711 "$T"
chown $PHPU:$PHPU "$d1" "$d1/id_ed25519" "$d1/id_ed25519.pub" "$d1/known_hosts"
chown -R $PHPU:$PHPU "$s1" "$(node_state 1)"
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"
daemon_start 2 || it_abort "n2's daemon did not start"
echo "=== it: $(date +%T.%3N) daemon_start n1 as $PHPU" >>"$(node_log 1)"
setpriv --reuid=$PHPU --regid=$PHPU --clear-groups -- "$SESSYNCD" -c "$(node_conf 1)" </dev/null >>"$(node_log 1)" 2>&1 &
echo $! >"$d1/daemon.pid"
wait_until 10 "$SESSYNCD" -c "$(node_conf 1)" --status >/dev/null 2>&1 || it_abort "n1's daemon did not start"
assert_eq "$(ps -o user= -p "$(daemon_pid 1)" | tr -d ' ')" "$PHPU" "n1's daemon runs as $PHPU"

# PHP on n1 runs as www-data too.
mkdir -p "$T/phpbin"
printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups -- %s "$@"\n' $PHPU $PHPU "$(command -v php)" \
	>"$T/phpbin/php"
chmod +x "$T/phpbin/php"
php1() { PATH=$T/phpbin:$PATH php_session 1 "$@"; }

status_field() {
	sessync_cli 1 --status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
warnings() { grep -c 'cannot read: Permission denied' "$(node_log 1)"; }

php1 bkok '$_SESSION["u"] = 1;' || it_abort "PHP on n1 failed"
check "a session PHP wrote on n1 replicates" wait_until 10 files_equal "$s1/sess_bkok" "$(node_sess_file 2 bkok)"

# 100 files PHP's user cannot read.
as_php sh -c 'cd "$1" && for i in $(seq 1 100); do echo "x|i:1;" >sess_unr$i; chmod 000 sess_unr$i; done' _ "$s1" ||
	it_abort "could not make the unreadable files"
check "all 100 are found unreadable" wait_until 10 test "$(status_field unreadable)" = 100
sleep 5
n=$(warnings)
it_note "warnings after ~5 s: $n (a fixed 1 s retry made ~600)"
assert_eq "$n" 100 "one warning per unreadable name over ~5 s"
assert_eq "$(status_field unreadable_total)" 100 "--status counts them (unreadable_total)"

# A change to one of them is worth one more warning; the rest stay quiet.
touch -d '-1 minute' "$s1/sess_unr7"
check "a changed unreadable file is warned about once more" wait_until 5 test "$(warnings)" = 101
sleep 2
assert_eq "$(warnings)" 101 "and only once"

# Readable again: replicated at once (the chmod raises an event).
chmod 0600 "$s1/sess_unr42"
check "a file made readable replicates" wait_until 5 files_equal "$s1/sess_unr42" "$(node_sess_file 2 unr42)"
check "it leaves the unreadable count" wait_until 5 test "$(status_field unreadable)" = 99
check "the log says so" grep -q 'readable again' "$(node_log 1)"
as_php sh -c 'rm -f "$1"/sess_unr*' _ "$s1"
check "removed files leave the count" wait_until 5 test "$(status_field unreadable)" = 0

# A lock held for 4 s by another process (flock(1) opens read-only: its
# release raises no event, so only the backoff finds it released).
f=$s1/sess_bkok
before=$(status_field lock_retries)
flock -x "$f" sleep 4 &
lockpid=$!
it_track_pid "$lockpid"
sleep 0.3
touch "$f"   # a change to look at while the lock is held
wait "$lockpid"
released=$(now_ms)
check "the change replicates once the lock is released" wait_until 5 files_equal "$f" "$(node_sess_file 2 bkok)"
it_note "replicated $(( $(now_ms) - released )) ms after the release"
looks=$(( $(status_field lock_retries) - before ))
it_note "looks at the locked file in ~4 s: $looks (a fixed 5 ms poll made ~800)"
check "a lock held 4 s costs a bounded number of looks ($looks <= 20)" test "$looks" -le 20
check "and at least one" test "$looks" -ge 1

# A PHP request that holds its lock for 2 s: its own close is seen at once.
php1 bkok '$_SESSION["u"] = 2;' || it_abort "PHP on n1 failed"
( PATH=$T/phpbin:$PATH php_session 1 bkok '$_SESSION["u"] = 3; sleep(2);' ) &
slow=$!
sleep 0.5
touch "$f"
wait "$slow"
done_at=$(now_ms)
check "a slow request's write replicates" wait_until 5 files_equal "$f" "$(node_sess_file 2 bkok)"
ms=$(( $(now_ms) - done_at ))
it_note "replicated ${ms} ms after the request ended"
check "within 500 ms of the request's end" test "$ms" -le 500
it_finish
