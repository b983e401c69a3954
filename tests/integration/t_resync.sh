#!/usr/bin/env bash
# A partition between two nodes while both still reach a third: n1 cannot
# reach n3 (n3's host key is missing from n1's known_hosts), everything
# else is up. A node pushes live only its own changes, so n1's session and
# then its logout reach n3 through n2's periodic catch-up (resync_interval),
# and n3 has them when n1 dies.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_resync
it_require_daemon
it_require_tags

cluster_create 3 || it_abort "cluster setup failed"
for i in 1 2 3; do sed -i "/^\[node\]/a resync_interval = 2s" "$(node_conf "$i")"; done
sed -i "/\]:$(node_port 3) /d" "$T/n1/known_hosts"
cluster_start || it_abort "cluster did not start"
check "n1 refuses n3 (no host key)" wait_until 10 grep -q 'peer "n3": no host key' "$(node_log 1)"

t0=$(now_ms)
php_session 1 part1 '$_SESSION["user"] = "alice";'
check "n1's session reaches n2 directly" wait_until 5 files_equal "$(node_sess_file 1 part1)" "$(node_sess_file 2 part1)"
if wait_until 10 files_equal "$(node_sess_file 1 part1)" "$(node_sess_file 3 part1)"; then
  ok "and n3 through n2's periodic catch-up"
  echo "# measured: session reached n3 via n2 in $(( $(now_ms) - t0 )) ms (resync_interval 2s)"
else
  fail "and n3 through n2's periodic catch-up"
fi
check "n3 applied it from n2" grep -qF "peer \"n2\": session $(sid_tag part1): applied FILE" "$(node_log 3)"

t0=$(now_ms)
php_destroy 1 part1
check "the logout reaches n2" wait_until 5 test ! -e "$(node_sess_file 2 part1)"
check "and n3, through n2" wait_until 10 test ! -e "$(node_sess_file 3 part1)"
# n2-n3 was up all along: only the periodic catch-up could carry it.
check "n2's periodic catch-up carried the logout" grep -q 'peer "n3": periodic catch-up found' "$(node_log 2)"
echo "# measured: logout reached n3 via n2 in $(( $(now_ms) - t0 )) ms"

php_session 1 part2 '$_SESSION["user"] = "bob";'
wait_until 10 files_equal "$(node_sess_file 1 part2)" "$(node_sess_file 3 part2)" || fail "part2 on n3"
daemon_stop 1 >/dev/null
sshd_stop 1
check "n1 is gone; n3 still has its latest session" files_equal "$(node_sess_file 2 part2)" "$(node_sess_file 3 part2)"
sleep 3
check "and the logged-out one stays gone" test ! -e "$(node_sess_file 3 part1)"
it_finish
