#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers run via wait_until
# session_format = codeigniter4 (docs/DESIGN.md "Session names").
# CodeIgniter 4 is not packaged in Debian, so tests/app/ci4_session.php
# follows its FileHandler's exact steps (file name, open mode, lock, chmod,
# truncate and write in place, touch when unchanged, unlink, GC by name and
# mtime) under PHP's session module: this tests sessync against those steps,
# not against CodeIgniter's own code. A write on n1 is read on n2; an
# unchanged request is a touch that replicates; a matchIP name (md5 of the
# address before the id) replicates; a destroy on n2 is a logout on n1; the
# GC's removal of an idle session is an expiry on both; other names (PHP's
# sess_*, another cookie name) stay put.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_codeigniter
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-10}
APP=$(cd "$(dirname "$0")/../app" && pwd)/ci4_session.php

cluster_create 2 || it_abort "cluster_create 2"
for i in 1 2; do node_conf_set "$i" session_format codeigniter4; done
cluster_start || it_abort "cluster did not start"
ok "2 nodes with session_format = codeigniter4 started"

ci() {
	local i=$1
	shift
	timeout 30 php -n -d display_errors=stderr "$APP" "$(node_sessions "$i")" "$@"
}
f() { echo "$(node_sessions "$1")/$2"; }
same() { files_equal "$(f 1 "$1")" "$(f 2 "$1")"; }
gone() { [[ ! -e $(f 1 "$1") && ! -e $(f 2 "$1") ]]; }

id=0123456789abcdef0123456789abcdef
name=ci_session$id
ci 1 write "$id" user alice || it_abort "write"
check "the file is FileHandler's: ci_session + 32 hex, mode 0600" test "$(stat -c %a "$(f 1 "$name")")" = 600
wait_until "$WAIT" same "$name"
check "alice's session replicated to n2 (bytes and mtime)" same "$name"
check "its mode on n2 is 0600 too" test "$(stat -c %a "$(f 2 "$name")")" = 600
assert_contains "$(ci 2 read "$id")" '"user":"alice"' "n2 reads alice"

# An unchanged request only touches the file: the new mtime replicates.
before=$(stat -c %Y.%N "$(f 1 "$name")")
sleep 1.1
ci 1 read "$id" >/dev/null || it_abort "read"
check "FileHandler touched the unchanged file" test "$(stat -c %Y "$(f 1 "$name")")" != "${before%%.*}"
wait_until "$WAIT" same "$name"
check "the touch replicated (mtime equal to the ns)" same "$name"

# matchIP: the address's md5 between the cookie name and the id.
ci 1 write "$id" user bob 192.0.2.7 || it_abort "write matchIP"
ipname=ci_session$(printf '%s' 192.0.2.7 | md5sum | cut -d' ' -f1)$id
check "matchIP's file name is ci_session + md5(ip) + id" test -e "$(f 1 "$ipname")"
wait_until "$WAIT" same "$ipname"
check "the matchIP session replicated" same "$ipname"

# A logout on n2 is a logout on n1.
ci 2 destroy "$id" || it_abort "destroy"
wait_until "$WAIT" gone "$name"
check "alice's session is gone on both nodes" gone "$name"
check "n1 applied a logout" grep -q "session $(sess_tag "$name"): deleted (destroyed)" "$(node_log 1)"
sleep 1
check "it did not come back" gone "$name"

# The GC's removal of an idle session is an expiry on both nodes (CI4's
# default sessionExpiration, 7200 s, is session_format's default lifetime).
id2=fedcba9876543210fedcba9876543210
ci 1 write "$id2" user carol || it_abort "write"
wait_until "$WAIT" same "ci_session$id2"
touch -d '-3 hours' "$(f 1 "ci_session$id2")"
touch -r "$(f 1 "ci_session$id2")" "$(f 2 "ci_session$id2")"   # idle on both (an older mtime travels nowhere)
sleep 0.5
assert_contains "$(ci 1 gc 7200)" "gc=1" "CodeIgniter's GC removed the idle session on n1"
wait_until "$WAIT" gone "ci_session$id2"
check "it is gone on n2 too" gone "ci_session$id2"
check "n2 applied an expiry, not a logout" grep -q "session $(sess_tag "ci_session$id2"): deleted (expired)" "$(node_log 2)"

# Not CodeIgniter's sessions here: PHP's name, another cookie name, a short id.
echo 'x' >"$(f 1 sess_0123456789abcdef)"
echo 'x' >"$(f 1 "otherapp$id")"
echo 'x' >"$(f 1 ci_session0123)"
ci 1 write "$id2" user dan || it_abort "write"
wait_until "$WAIT" same "ci_session$id2"
check "a later session replicated" same "ci_session$id2"
check "sess_* did not travel" test ! -e "$(f 2 sess_0123456789abcdef)"
check "another cookie name did not travel" test ! -e "$(f 2 "otherapp$id")"
check "a short id did not travel" test ! -e "$(f 2 ci_session0123)"

cluster_stop || fail "a daemon did not stop cleanly"
it_finish
