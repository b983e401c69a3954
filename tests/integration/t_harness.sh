#!/usr/bin/env bash
# shellcheck disable=SC2016  # PHP code sits in single quotes on purpose
# Tests the harness itself, without sessyncd: a 3-node cluster's sshds accept
# exactly the peer keys, force the --serve command (with --from naming the
# peer), check host keys, and real php-cli writes, touches and destroys
# session files the way docs/DESIGN.md "PHP's files handler" says.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_harness

# The forced command is whatever SESSYNCD is when cluster_create writes
# authorized_keys: a stand-in that shows what sshd ran and in which env.
cat >"$T/fake-sessyncd" <<'EOF'
#!/bin/sh
echo "FORCED $*"
echo "HOME=$HOME"
echo "ORIG=${SSH_ORIGINAL_COMMAND:-}"
EOF
chmod 0755 "$T/fake-sessyncd"
SESSYNCD=$T/fake-sessyncd

cluster_create 3 || it_abort "cluster_create 3"
ok "cluster_create 3 (sshd -t accepted every sshd_config)"

for i in 1 2 3; do
	sshd_start "$i" || it_abort "sshd_start $i"
done
ok "3 sshds listening on ports $(node_port 1) $(node_port 2) $(node_port 3)"

u=$(id -un)
P1=$(node_port 1) P2=$(node_port 2) P3=$(node_port 3)

# it_ssh KEY KNOWN_HOSTS PORT CMD...: OpenSSH's client, nothing from ~/.ssh,
# /etc/ssh or an agent; bounded.
it_ssh() {
	timeout 10 ssh -F /dev/null -i "$1" \
		-o IdentitiesOnly=yes -o IdentityAgent=none \
		-o UserKnownHostsFile="$2" -o GlobalKnownHostsFile=/dev/null \
		-o StrictHostKeyChecking=yes -o UpdateHostKeys=no \
		-o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR \
		-p "$3" "$u@127.0.0.1" "${@:4}" 2>&1
}

# --- layout
assert_eq "$(wc -l <"$T/n1/known_hosts")" 2 "n1 known_hosts has the 2 other nodes"
check "n1 known_hosts line for n2 is [127.0.0.1]:PORT ssh-ed25519" \
	grep -qx "\[127\.0\.0\.1\]:$P2 ssh-ed25519 [A-Za-z0-9+/=]*" "$T/n1/known_hosts"
check "n2 authorized_keys forces --serve --from n1 with restrict" \
	grep -qF "command=\"$SESSYNCD -c $T/n2/sessync.conf --serve --from n1\",restrict ssh-ed25519 " \
	"$T/n2/sshd/authorized_keys"
check "n1 sessync.conf names peer n3 on its port" \
	grep -qx "port = $P3" "$T/n1/sessync.conf"
assert_eq "$(stat -c %a "$(node_sessions 1)")" 700 "session dir is 0700"

# --- the forced command wins over the requested one
out=$(it_ssh "$T/n1/id_ed25519" "$T/n1/known_hosts" "$P2" anything)
rc=$?
assert_eq "$rc" 0 "n1 -> n2 ssh exits 0"
assert_contains "$out" "FORCED -c $T/n2/sessync.conf --serve --from n1" "n1 -> n2 runs the forced command with --from n1"
assert_contains "$out" "ORIG=anything" "requested command only reaches SSH_ORIGINAL_COMMAND"
assert_contains "$out" "HOME=$T/n2" "SetEnv HOME points at the node dir"

out=$(it_ssh "$T/n3/id_ed25519" "$T/n3/known_hosts" "$P2" anything)
assert_contains "$out" "--serve --from n3" "n3 -> n2 is told apart by its key (--from n3)"

# --- refusals
out=$(it_ssh "$T/n1/id_ed25519" "$T/n2/known_hosts" "$P1" anything)
rc=$?
if [[ $rc == 255 && $out != *FORCED* && $out == *"Permission denied"* ]]; then
	ok "a node's own key is refused by its own sshd"
else fail "a node's own key is refused by its own sshd (rc=$rc: $out)"; fi

ssh-keygen -q -t ed25519 -N '' -C wrong -f "$T/wrong_key"
out=$(it_ssh "$T/wrong_key" "$T/n1/known_hosts" "$P2" anything)
rc=$?
if [[ $rc == 255 && $out != *FORCED* && $out == *"Permission denied"* ]]; then
	ok "an unknown client key is refused"
else fail "an unknown client key is refused (rc=$rc: $out)"; fi

# n2's port paired with n3's host key: a changed host key.
echo "[127.0.0.1]:$P2 $(cut -d' ' -f1,2 "$T/n3/sshd/ssh_host_ed25519_key.pub")" >"$T/swapped_known_hosts"
out=$(it_ssh "$T/n1/id_ed25519" "$T/swapped_known_hosts" "$P2" anything)
rc=$?
if [[ $rc == 255 && $out != *FORCED* && $out == *"Host key verification failed"* ]]; then
	ok "a swapped host key in known_hosts is refused"
else fail "a swapped host key in known_hosts is refused (rc=$rc: $out)"; fi

: >"$T/empty_known_hosts"
out=$(it_ssh "$T/n1/id_ed25519" "$T/empty_known_hosts" "$P2" anything)
rc=$?
if [[ $rc == 255 && $out != *FORCED* && $out == *"Host key verification failed"* ]]; then
	ok "an unknown host key is refused"
else fail "an unknown host key is refused (rc=$rc: $out)"; fi

# --- real php-cli on node 1
sid=itHarness0123456789abcdefAB
f=$(node_sess_file 1 "$sid")
incr='$_SESSION["n"]=($_SESSION["n"]??0)+1;'
check "php_session creates sess_$sid" php_session 1 "$sid" "$incr"
check "second request succeeds" php_session 1 "$sid" "$incr"
assert_eq "$(cat "$f" 2>/dev/null)" 'n|i:2;' "sess_ file holds PHP's serialization n|i:2;"
assert_eq "$(stat -c %a "$f" 2>/dev/null)" 600 "PHP creates the file 0600"
assert_eq "$(php_read 1 "$sid" | tr -d ' \n')" "array('n'=>2,)" "php_read sees n=2"

cp -p "$f" "$T/before"
check "files_equal: cp -p copy has the same bytes and mtime ns" files_equal "$f" "$T/before"
m0=$(mtime_ns "$f")
check "php_touch succeeds" php_touch 1 "$sid"
m1=$(mtime_ns "$f")
check "php_touch leaves the content unchanged" cmp -s "$f" "$T/before"
if [[ $m0 != "$m1" ]]; then ok "php_touch changes the mtime ($m0 -> $m1)"; else fail "php_touch changes the mtime (still $m0)"; fi
check "files_equal is false once only the mtime differs" not files_equal "$f" "$T/before"
if [[ $m1 =~ ^[0-9]{19}$ ]]; then ok "mtime_ns gives integer nanoseconds"; else fail "mtime_ns gives integer nanoseconds ($m1)"; fi

check "php_destroy succeeds" php_destroy 1 "$sid"
check "php_destroy unlinks sess_$sid" test ! -e "$f"

# --- helpers and teardown
t0=$(now_ms)
wait_until 0.2 false
rc=$?
t1=$(now_ms)
if [[ $rc == 1 ]] && ((t1 - t0 >= 200 && t1 - t0 < 1000)); then
	ok "wait_until 0.2 false times out after $((t1 - t0)) ms"
else fail "wait_until 0.2 false (rc=$rc, $((t1 - t0)) ms)"; fi

pid2=$(cat "$T/n2/sshd/pid")
sshd_stop 2
if ! kill -0 "$pid2" 2>/dev/null && ! _it_port_listening "$P2"; then
	ok "sshd_stop 2 stops it by PID and frees its port"
else fail "sshd_stop 2 stops it by PID and frees its port"; fi

it_finish
