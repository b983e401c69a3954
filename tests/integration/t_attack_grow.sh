#!/usr/bin/env bash
# Attack (issue 10, "Names never seen", the space reserve): a holder of n2's
# key creates 400 small sessions on n1 (8 bytes each: far from the reserve),
# then sends a newer 64 KiB version of each (25 MiB for a 16 MiB session
# tmpfs). The reserve is met only when a file is created, not when it grows,
# so on main the tmpfs fills to the last byte and PHP on n1 cannot write a
# session: the node is down for logins. The reserve must hold whatever the
# order of frames.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_attack_grow
it_require_daemon

cluster_create 2 || it_abort "cluster setup failed"
s1=$(node_sessions 1)
it_mount_tmpfs "$s1" 16m || it_abort "cannot mount a tmpfs on $s1"
node_conf_set 1 log_level info
sshd_start 1 || it_abort "sshd did not start"
daemon_start 1 || it_abort "daemon did not start"   # n2's key is the attacker's

python3 "$here/attack_peer.py" "$(node_sock 1)" n2 n1 grow 400 65536 >"$T/grow.json" || fail "the attacker failed"
read -r size avail < <(df -B1 --output=size,avail "$s1" | tail -1)
it_note "grow: $(cat "$T/grow.json"); tmpfs ${avail} of ${size} bytes free"
check "the session tmpfs keeps 1/16 free ($avail >= $size / 16)" test "$avail" -ge $((size / 16))
php_session 1 localwrite '$_SESSION["still"] = str_repeat("z", 200000);' || fail "PHP on n1 failed"
check "PHP on n1 can still write a 200 KB session" test "$(stat -c %s "$(node_sess_file 1 localwrite)" 2>/dev/null || echo 0)" -gt 200000
it_finish
