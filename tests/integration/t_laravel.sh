#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers run via wait_until
# session_format = laravel (docs/DESIGN.md "Session names") with real
# Laravel: Debian's php-illuminate-session (Laravel 8), its Store over its
# FileSessionHandler, driven by tests/app/laravel.php, one request per run.
# A user logs in on n1, is recognised on n2, logs out on n2, and is logged
# out on n1 too (the logout is not undone by a catch-up). Laravel's GC on one
# node is an expiry everywhere: a session idle past the lifetime is gone on
# both nodes; and a user who stayed active on n2 while n1's copy went stale
# (n2's daemon down) and n1's GC removed it keeps the session: the expiry
# loses to the newer write. Files that are not Laravel sessions (PHP's
# sess_*, Laravel's .gitignore) do not replicate.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_laravel
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-10}
APP=$(cd "$(dirname "$0")/../app" && pwd)/laravel.php
[[ -f /usr/share/php/Illuminate/Session/Store.php ]] || it_abort "php-illuminate-session is not installed (tests/deps)"

cluster_create 2 || it_abort "cluster_create 2"
for i in 1 2; do node_conf_set "$i" session_format laravel; done
echo "*" >"$(node_sessions 1)/.gitignore"   # what Laravel's storage/framework/sessions holds
cluster_start || it_abort "cluster did not start"
ok "2 nodes with session_format = laravel started"

# lv I ACTION [ID [NAME]]: one Laravel request on node I.
lv() {
	local i=$1
	shift
	timeout 30 php -n -d extension=ctype -d extension=mbstring -d display_errors=stderr \
		"$APP" "$(node_sessions "$i")" "$@"
}
lv_id() { sed -n 's/^id=//p'; }
f() { echo "$(node_sessions "$1")/$2"; }
same() { files_equal "$(f 1 "$1")" "$(f 2 "$1")"; }
gone() { [[ ! -e $(f 1 "$1") && ! -e $(f 2 "$1") ]]; }

# --- log in on n1, recognised on n2, log out on n2, logged out on n1
out=$(lv 1 login '' alice) || it_abort "login: $out"
alice=$(lv_id <<<"$out")
check "Laravel's id is 40 alphanumerics" grep -Eq '^[A-Za-z0-9]{40}$' <<<"$alice"
wait_until "$WAIT" same "$alice"
check "alice's session (a bare 40-character name) replicated to n2" same "$alice"
out=$(lv 2 whoami "$alice") || it_abort "whoami: $out"
assert_contains "$out" "user=alice" "n2's Laravel knows alice"
wait_until "$WAIT" same "$alice"
check "n2's write (Laravel writes every request) is back on n1" same "$alice"

out=$(lv 2 logout "$alice") || it_abort "logout: $out"
guest=$(lv_id <<<"$out")
check "the logout gave a new id" test "$guest" != "$alice"
wait_until "$WAIT" gone "$alice"
check "alice's file is gone on both nodes" gone "$alice"
check "n1 saw it as a logout" grep -q "session $(sess_tag "$alice"): deleted (destroyed)" "$(node_log 1)"
out=$(lv 1 whoami "$alice") || it_abort "whoami: $out"
assert_contains "$out" "user=-" "n1's Laravel: alice's old id is a guest now"
# That request wrote a fresh, empty session under the old id (Store::save): a
# new session, not alice's, and it does not bring her login back.
check "n1's file for the old id holds no login" not grep -q alice "$(f 1 "$alice")"
wait_until "$WAIT" same "$guest"
check "the new guest session replicated" same "$guest"

# --- GC: an idle session is an expiry on both nodes
out=$(lv 1 login '' carol) || it_abort "login: $out"
carol=$(lv_id <<<"$out")
wait_until "$WAIT" same "$carol"
# Idle for 3 h, over Laravel's 120 minutes, on both nodes (an mtime moved
# back is an older version: no peer takes it, so age both copies).
touch -d '-3 hours' "$(f 1 "$carol")"
touch -r "$(f 1 "$carol")" "$(f 2 "$carol")"
sleep 0.5
check "both copies are idle and equal" same "$carol"
lv 1 gc >/dev/null || it_abort "gc"
check "Laravel's GC on n1 removed carol's idle session" test ! -e "$(f 1 "$carol")"
wait_until "$WAIT" gone "$carol"
check "carol's session is gone on n2 too" gone "$carol"
check "n1 classed it as an expiry" grep -q "session $(sess_tag "$carol"): deleted here (expired)" "$(node_log 1)"
check "n2 applied an expiry, not a logout" grep -q "session $(sess_tag "$carol"): deleted (expired)" "$(node_log 2)"

# --- GC of a stale copy never logs out a user active elsewhere
out=$(lv 1 login '' dave) || it_abort "login: $out"
dave=$(lv_id <<<"$out")
wait_until "$WAIT" same "$dave"
daemon_stop 2 || fail "n2's daemon did not stop cleanly"
# dave stays active on n2, whose daemon is down: n1 does not hear of it, and
# n1's copy goes stale (as if idle for 3 h there).
out=$(lv 2 whoami "$dave") || it_abort "whoami: $out"
assert_contains "$out" "user=dave" "dave is active on n2"
touch -d '-3 hours' "$(f 1 "$dave")"
lv 1 gc >/dev/null || it_abort "gc"
check "n1's GC removed its stale copy of dave" test ! -e "$(f 1 "$dave")"
daemon_start 2 || it_abort "n2's daemon did not start"
wait_until "$WAIT" same "$dave"
check "dave's active session is back on n1: the expiry lost to the newer write" same "$dave"
out=$(lv 1 whoami "$dave") || it_abort "whoami: $out"
assert_contains "$out" "user=dave" "n1's Laravel still knows dave"

# --- what is not a Laravel session stays put
echo 'a|i:1;' >"$(f 1 sess_0123456789abcdef)"
out=$(lv 1 login '' erin) || it_abort "login: $out"
erin=$(lv_id <<<"$out")
wait_until "$WAIT" same "$erin"
check "a later session replicated" same "$erin"
check "PHP's sess_* name is not a session here" test ! -e "$(f 2 sess_0123456789abcdef)"
check "Laravel's .gitignore did not travel" test ! -e "$(f 2 .gitignore)"

# --- the logout stays a logout after a full catch-up
daemon_stop 1 || fail "n1 did not stop cleanly"
daemon_start 1 || it_abort "n1 did not start"
wait_until "$WAIT" same "$erin"
check "after n1's restart and catch-up alice's login is still gone on n2" not grep -q alice "$(f 2 "$alice")" 2>/dev/null

cluster_stop || fail "a daemon did not stop cleanly"
it_finish
