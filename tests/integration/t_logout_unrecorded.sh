#!/usr/bin/env bash
# A logout of a session this node never recorded stays a logout
# (docs/DESIGN.md "Destroy and expiry"). alice writes on n1 while n1's
# daemon is dead (so n2 never gets that write), then logs out on n2, where
# PHP creates the file (session_start() of an id n2 lacks), holds its lock
# for the request and unlinks it (session_destroy()): n2's daemon finds it
# locked, then gone, never readable. Found by the chaos test. Before, n2 kept no tombstone, and when n1's daemon came back
# its copy brought the session back on both nodes. And the receiver's own
# create-and-remove of a refused apply is not taken for a logout.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_logout_unrecorded
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-10}
cluster_create 2 || it_abort "cluster_create 2"
cluster_start || it_abort "cluster did not start"
wait_until "$WAIT" peer_connected 1 n2 || it_abort "n1 -> n2 not connected"

daemon_kill9 1
php_session 1 lostlogout1 '$_SESSION["u"] = "alice";' || it_abort "write on n1"
ok "alice's session written on n1 while n1's daemon is dead"
# The logout request on n2: session_start() creates the file and holds its
# lock for the request (n2's daemon finds it locked), session_destroy()
# unlinks it before the lock ever lets the daemon read it.
_it_php 2 -r '
	session_id($argv[1]);
	if (!session_start()) exit(1);
	usleep(400000);
	if (!session_destroy()) exit(1);' -- lostlogout1 || it_abort "logout on n2"
check "logged out on n2 (PHP created the file empty and unlinked it)" gone_on lostlogout1 2
recorded() { [[ $(journal_kind 2 lostlogout1) == 1 ]]; }
wait_until "$WAIT" recorded
check "n2 recorded the logout of a session it never had as a destroy" recorded
daemon_start 1 || it_abort "restart n1"
wait_until "$WAIT" peer_connected 1 n2 || it_abort "n1 -> n2 not connected again"
gone_both() { gone_on lostlogout1 1 && gone_on lostlogout1 2; }
wait_until "$WAIT" gone_both
check "n1's older copy lost to the logout: gone on n1" gone_on lostlogout1 1
sleep 1
check "and it did not come back on n2" gone_on lostlogout1 2

# A new session from a peer still arrives (the receiver's own creations are
# not logouts), and one more write replicates as usual.
php_session 1 fresh1 '$_SESSION["u"] = "bob";' || it_abort "write on n1"
arrived() { files_equal "$(node_sess_file 1 fresh1)" "$(node_sess_file 2 fresh1)"; }
wait_until "$WAIT" arrived
check "a new session from n1 arrives on n2" arrived
check "n2 recorded no logout for it" test "$(journal_kind 2 fresh1)" != 1

cluster_stop || fail "a daemon did not stop cleanly"
it_finish
