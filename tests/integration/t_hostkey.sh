#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# Host keys are checked against known_hosts (docs/DESIGN.md "Peers and keys"): a changed
# key and an unknown host are refused with a clear message, nothing
# replicates, the client never offers its key to that server, and
# known_hosts is never rewritten (no trust on first use). Once the right key
# line is in known_hosts, the waiting session arrives.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_hostkey
it_require_daemon

WAIT=${IT_WAIT:-10}

cluster_create 2 || it_abort "cluster_create 2"
kh=$T/n1/known_hosts
hostkey=$T/n2/sshd/ssh_host_ed25519_key
p2=$(node_port 2)

# n1's known_hosts now holds n2's original key. Give n2 a new one.
rm -f -- "$hostkey" "$hostkey.pub"
ssh-keygen -q -t ed25519 -N '' -C host-n2-new -f "$hostkey" || it_abort "ssh-keygen"
kh_sum=$(sha256sum <"$kh")
new_line="[127.0.0.1]:$p2 $(cut -d' ' -f1,2 "$hostkey.pub")"
check "n1's known_hosts holds a different key for n2" not grep -qxF "$new_line" "$kh"
client_fp=$(ssh-keygen -lf "$T/n1/id_ed25519.pub" | awk '{ print $2 }')

cluster_start || it_abort "cluster did not start"
ok "2-node cluster started"

# peer_json NODE PEER: "connected|last_error" of PEER in NODE's --status --json.
peer_json() {
	sessync_cli "$1" --status --json 2>/dev/null | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["peers"] if p["name"] == sys.argv[1]][0]
print("%s|%s" % (str(p["connected"]).lower(), p["last_error"]))' "$2"
}

# log_since LINE: n1's daemon log from line LINE on (after a restart).
log_since() { tail -n "+$1" "$(node_log 1)"; }

# logged LINE PATTERN...: every PATTERN (grep -i) is on one log line since LINE.
logged() {
	local from=$1 lines
	shift
	lines=$(log_since "$from")
	for p in "$@"; do lines=$(grep -i -- "$p" <<<"$lines") || return 1; done
}

# status_says PEER_CONNECTED PATTERN: n1's status for n2 is
# connected=PEER_CONNECTED and last_error matches PATTERN (grep -i).
status_says() {
	local s
	s=$(peer_json 1 n2) || return 1
	[[ ${s%%|*} == "$1" ]] && grep -qi -- "$2" <<<"${s#*|}"
}

# not_offered: n2's sshd never saw n1's client key (it was not offered to a
# server whose host key failed the check).
not_offered() { ! grep -qF "$client_fp" "$T/n2/sshd/log"; }

# ------------------------------------------------ 1. changed host key
sid=hostkeyChanged0123456789
check "n1: PHP writes a session" php_session 1 "$sid" '$_SESSION["user"] = "mallory-target";'
check "n1's daemon logs that n2's host key changed" wait_until "$WAIT" logged 1 "host key" "changed"
log_since 1 | grep -i "host key" | head -n 1 | sed 's/^/#   /'
check "n1's status: n2 connected=false, last_error names the host key" \
	wait_until "$WAIT" status_says false "host key"
it_note "status: $(peer_json 1 n2)"
check "the session does not appear on n2 within 3 s" not wait_until 3 test -e "$(node_sess_file 2 "$sid")"
assert_eq "$(sha256sum <"$kh")" "$kh_sum" "n1's known_hosts is unchanged"
check "n1 never offered its key to the server with the changed host key" not_offered
check "n1's daemon keeps running" daemon_running 1

# ------------------------------------------------ 2. unknown host
check "n1's daemon stops" daemon_stop 1
grep -vF "[127.0.0.1]:$p2 " "$kh" >"$T/kh.new"
cat -- "$T/kh.new" >"$kh"   # in place: same file, same inode
kh_sum=$(sha256sum <"$kh")
check "n2's line is gone from n1's known_hosts" not grep -qF "[127.0.0.1]:$p2 " "$kh"
from=$(($(wc -l <"$(node_log 1)") + 1))
check "n1's daemon starts again" daemon_start 1
check "n1's daemon logs no host key for n2 in known_hosts" \
	wait_until "$WAIT" logged "$from" "host key" "known_hosts"
log_since "$from" | grep -i "known_hosts" | head -n 1 | sed 's/^/#   /'
check "n1's status: n2 connected=false, last_error mentions known_hosts" \
	wait_until "$WAIT" status_says false "known_hosts"
it_note "status: $(peer_json 1 n2)"
check "the session still does not appear on n2 within 3 s" not wait_until 3 test -e "$(node_sess_file 2 "$sid")"
assert_eq "$(sha256sum <"$kh")" "$kh_sum" "n1's known_hosts is unchanged (the unknown key was not added)"
check "n1 never offered its key to the unknown server" not_offered

# ------------------------------------------------ 3. the right key
echo "$new_line" >>"$kh"
check "n1's daemon stops" daemon_stop 1
from=$(($(wc -l <"$(node_log 1)") + 1))
check "n1's daemon starts with n2's new key in known_hosts" daemon_start 1
check "the waiting session arrives on n2 (bytes and mtime ns)" \
	wait_until "$WAIT" files_equal "$(node_sess_file 1 "$sid")" "$(node_sess_file 2 "$sid")"
check "n1's status: n2 connected=true" wait_until "$WAIT" status_says true ""
check "a new session replicates too" php_session 1 hostkeyFixed0123 '$_SESSION["ok"] = 1;'
check "... and arrives on n2" wait_until "$WAIT" \
	files_equal "$(node_sess_file 1 hostkeyFixed0123)" "$(node_sess_file 2 hostkeyFixed0123)"
if logged "$from" "host key"; then
	fail "no host-key complaint after the fix"
	log_since "$from" | grep -i "host key" | sed 's/^/#   /'
else ok "no host-key complaint after the fix"; fi

check "cluster stops cleanly" cluster_stop
it_finish
