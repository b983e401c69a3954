#!/usr/bin/env bash
# Clock skew is measured at handshake and warned about above clock_skew_warn.
# n2's daemon runs under libfaketime with its wall clock 30 s ahead (the
# kernel's clock and file mtimes are untouched): each side must warn about
# the other with the measured offset, and replication still works.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_skew
it_require_daemon
command -v faketime >/dev/null || it_abort "faketime is not installed (make check installs it)"

cluster_create 2 || it_abort "cluster setup failed"
sshd_start 1 && sshd_start 2 || it_abort "sshd did not start"
# n2's daemon: +30 s on CLOCK_REALTIME only: its monotonic timers stay true
# and stat() reports true file times (NO_FAKE_STAT), as the kernel keeps them.
NO_FAKE_STAT=1 FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f +30s "$SESSYNCD" -c "$(node_conf 2)" </dev/null >>"$(node_log 2)" 2>&1 &
echo $! >"$(node_dir 2)/daemon.pid"
it_track_pid "$!"
wait_until 5 "$SESSYNCD" -c "$(node_conf 2)" --status >/dev/null 2>&1 || it_abort "n2's daemon did not start"
daemon_start 1 || it_abort "n1's daemon did not start"

check "n1 warns that n2's clock is ~30 s ahead" \
  wait_until 10 grep -Eq 'peer "n2": clock differs from ours by (29|30|31)[0-9]{3} ms' "$(node_log 1)"
check "n2 warns that n1's clock is ~30 s behind" \
  wait_until 10 grep -Eq 'peer "n1": clock differs from ours by -(29|30|31)[0-9]{3} ms' "$(node_log 2)"
grep -ho 'clock differs from ours by -\?[0-9]* ms' "$(node_log 1)" | head -1 | sed 's/^/# measured: n1 saw n2: /'

php_session 1 skew1 '$_SESSION["a"] = 1;'
check "replication n1 -> n2 still works" wait_until 5 files_equal "$(node_sess_file 1 skew1)" "$(node_sess_file 2 skew1)"
php_session 2 skew2 '$_SESSION["b"] = 2;'
check "replication n2 -> n1 still works" wait_until 5 files_equal "$(node_sess_file 2 skew2)" "$(node_sess_file 1 skew2)"

# Within the threshold: no warning. Both daemons on the true clock.
daemon_stop 1 >/dev/null; daemon_stop 2 >/dev/null
mark=$(wc -l <"$(node_log 1)")
daemon_start 2 && daemon_start 1 || it_abort "restart failed"
since_mark() { tail -n +"$mark" "$(node_log 1)" | grep -q "$1"; }
check "n1 reconnected to n2" wait_until 10 since_mark 'peer "n2": connected,'
check "no warning when clocks agree" not since_mark 'clock differs'
it_finish
