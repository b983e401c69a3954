#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers run via wait_until
# Modern SSH only, and known_hosts read as OpenSSH reads it (docs/DESIGN.md
# "Peers and keys"), against a real OpenSSH sshd:
#   1. a hashed known_hosts (ssh-keygen -H) works, a @cert-authority line is
#      reported at start with its file:line, and what the default sshd
#      negotiated (its own LogLevel DEBUG log) is in the pinned set;
#   2. a @revoked line for the peer's key refuses it, naming file:line;
#   3. a bare "127.0.0.1 KEY" line does not vouch for port != 22;
#   4. an sshd that offers only a legacy algorithm (SHA-1 or group1 KEX,
#      CBC, 3DES, SHA-1 or MD5 MACs, -etm only, chacha20 only) is refused,
#      and so is a host whose only key is RSA (libssh2 1.10 verifies RSA
#      host keys with SHA-1 only).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_sshalgo
it_require_daemon

WAIT=${IT_WAIT:-10}

# The pinned sets (daemon/peer_ssh.c), as a test of what was agreed.
PIN_KEX=" mlkem768x25519-sha256 sntrup761x25519-sha512 sntrup761x25519-sha512@openssh.com curve25519-sha256
 curve25519-sha256@libssh.org ecdh-sha2-nistp256 ecdh-sha2-nistp384 ecdh-sha2-nistp521
 diffie-hellman-group-exchange-sha256 diffie-hellman-group16-sha512 diffie-hellman-group18-sha512
 diffie-hellman-group14-sha256 "
PIN_CIPHER=" aes128-ctr aes192-ctr aes256-ctr aes128-gcm@openssh.com aes256-gcm@openssh.com "
PIN_MAC=" hmac-sha2-256 hmac-sha2-512 "
PIN_HOSTKEY=" ssh-ed25519 ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521 rsa-sha2-512 rsa-sha2-256 "

cluster_create 2 || it_abort "cluster_create 2"
kh=$T/n1/known_hosts
p2=$(node_port 2)
cfg2=$T/n2/sshd/sshd_config
hostkey2=$(cut -d' ' -f1,2 "$T/n2/sshd/ssh_host_ed25519_key.pub")
# n2's sshd logs the algorithms it agreed on at DEBUG.
sed -i 's/^LogLevel VERBOSE$/LogLevel DEBUG/' "$cfg2"
grep -qx 'LogLevel DEBUG' "$cfg2" || it_abort "cannot set n2's sshd LogLevel DEBUG"
cp -- "$cfg2" "$T/sshd_config.base"

log_since() { tail -n "+$1" "$(node_log 1)"; }
log_mark() { echo $(($(wc -l <"$(node_log 1)") + 1)); }
# logged LINE PATTERN...: every PATTERN (grep -iF) is on one n1 log line since LINE.
logged() {
	local from=$1 lines
	shift
	lines=$(log_since "$from")
	for p in "$@"; do lines=$(grep -iF -- "$p" <<<"$lines") || return 1; done
}
show() { log_since "$1" | grep -iF -- "$2" | head -n 1 | sed 's/^/#   /'; }
restart_n1() {
	daemon_stop 1 >/dev/null
	daemon_start 1
}
arrives() { wait_until "$WAIT" files_equal "$(node_sess_file 1 "$1")" "$(node_sess_file 2 "$1")"; }
stays_away() { not wait_until "$1" test -e "$(node_sess_file 2 "$2")"; }
# in_set SET WORD: WORD is one of SET's words.
in_set() {
	local w
	for w in $1; do [[ $w == "$2" ]] && return 0; done
	return 1
}

# ------------------------------------------------ 1. hashed names, @cert-authority, what was agreed
ssh-keygen -q -H -f "$kh" >/dev/null 2>&1 || it_abort "ssh-keygen -H"
rm -f -- "$kh.old"
check "n1's known_hosts is hashed: no plain name left" not grep -qF "127.0.0.1" "$kh"
check "... and its line for n2 is a |1| entry" grep -q '^|1|' "$kh"
check "OpenSSH finds [127.0.0.1]:$p2 in it (ssh-keygen -F)" \
	sh -c 'ssh-keygen -F "$1" -f "$2" | grep -q "^|1|"' _ "[127.0.0.1]:$p2" "$kh"
ca_key=$(ssh-keygen -q -t ed25519 -N '' -C ca -f "$T/ca" >/dev/null && cut -d' ' -f1,2 "$T/ca.pub")
echo "@cert-authority [127.0.0.1]:* $ca_key" >>"$kh"
ca_line=$(wc -l <"$kh")

cluster_start || it_abort "cluster did not start"
ok "2-node cluster started"
check "n1's start log names known_hosts:$ca_line as @cert-authority, not trusted" \
	wait_until "$WAIT" logged 1 "$kh:$ca_line:" "@cert-authority" "not supported"
show 1 "@cert-authority"
sid=sshalgoHashed0123456789
check "n1: PHP writes a session" php_session 1 "$sid" '$_SESSION["u"] = "hashed";'
check "it arrives on n2 through the hashed known_hosts entry" arrives "$sid"
check "n1 logs what it agreed" wait_until "$WAIT" logged 1 "SSH to [127.0.0.1]:$p2: kex"
show 1 "SSH to ["

# sshd -E at DEBUG: "kex: algorithm: X", "kex: host key algorithm: Y",
# "kex: client->server cipher: C MAC: M compression: none" (and server->client).
slog=$T/n2/sshd/log
kex=$(sed -n 's/.*kex: algorithm: \([^ ]*\).*/\1/p' "$slog" | tail -n 1)
hk=$(sed -n 's/.*kex: host key algorithm: \([^ ]*\).*/\1/p' "$slog" | tail -n 1)
c2s=$(grep 'kex: client->server cipher:' "$slog" | tail -n 1)
s2c=$(grep 'kex: server->client cipher:' "$slog" | tail -n 1)
it_note "sshd agreed: kex $kex; host key $hk"
it_note "  ${c2s#*kex: }"
it_note "  ${s2c#*kex: }"
check "the KEX agreed ($kex) is a pinned one" in_set "$PIN_KEX" "$kex"
check "the host-key algorithm agreed ($hk) is a pinned one" in_set "$PIN_HOSTKEY" "$hk"
for line in "$c2s" "$s2c"; do
	cipher=$(sed -n 's/.*cipher: \([^ ]*\) MAC: \([^ ]*\) .*/\1/p' <<<"$line")
	mac=$(sed -n 's/.*cipher: \([^ ]*\) MAC: \([^ ]*\) .*/\2/p' <<<"$line")
	check "the cipher agreed ($cipher) is a pinned one" in_set "$PIN_CIPHER" "$cipher"
	check "the MAC agreed ($mac) is a pinned one" in_set "$PIN_MAC" "$mac"
done
check "neither chacha20-poly1305 nor an -etm MAC was agreed (Terrapin, without strict KEX)" \
	not grep -qE 'cipher: chacha20|MAC: [^ ]*-etm' "$slog"

# ------------------------------------------------ 2. @revoked
cp -- "$kh" "$T/kh.good"
echo "@revoked * $hostkey2" >>"$kh"
rev_line=$(wc -l <"$kh")
from=$(log_mark)
check "n1 restarts with n2's key @revoked at line $rev_line" restart_n1
check "n1 refuses n2's key as revoked, naming known_hosts:$rev_line" \
	wait_until "$WAIT" logged "$from" "REVOKED" "$kh:$rev_line"
show "$from" "REVOKED"
sid=sshalgoRevoked0123456789
check "n1: PHP writes a session" php_session 1 "$sid" '$_SESSION["u"] = "revoked";'
check "it does not reach n2 within 3 s" stays_away 3 "$sid"

# ------------------------------------------------ 3. a bare host line for port != 22
echo "127.0.0.1 $hostkey2" >"$kh"
check "OpenSSH finds no [127.0.0.1]:$p2 in a bare-host file (ssh-keygen -F)" \
	not sh -c 'ssh-keygen -F "$1" -f "$2" | grep -q .' _ "[127.0.0.1]:$p2" "$kh"
from=$(log_mark)
check "n1 restarts with only a bare \"127.0.0.1\" line for n2" restart_n1
check "n1 refuses: no host key for [127.0.0.1]:$p2, line 1 is for port 22 only" \
	wait_until "$WAIT" logged "$from" "no host key for [127.0.0.1]:$p2" "line 1 has this key" "port 22 only"
show "$from" "no host key"
check "the waiting session still does not reach n2 within 2 s" stays_away 2 "$sid"

# ------------------------------------------------ 4. legacy-only sshd
cp -- "$T/kh.good" "$kh"
# sshd_with LINE...: restart n2's sshd with the base config plus LINEs.
sshd_with() {
	sshd_stop 2
	{ cat "$T/sshd_config.base"; printf '%s\n' "$@"; } >"$cfg2"
	"$IT_SSHD" -t -f "$cfg2" || return 1
	: >"$slog"
	sshd_start 2
}
# refused_legacy WHAT SSHD_LINE...: with only that on offer, n1 gets nowhere
# and says why, and sshd says it found nothing in common with us.
refused_legacy() {
	local what=$1 from
	shift
	check "n2's sshd offers only $what" sshd_with "$@"
	from=$(log_mark)
	check "n1 restarts" restart_n1
	check "$what: n1 refuses, no algorithm in common" \
		wait_until "$WAIT" logged "$from" "handshake with [127.0.0.1]:$p2 failed" "no algorithm in common"
	check "$what: sshd found no match in n1's offer" wait_until "$WAIT" grep -qi "no matching" "$slog"
	grep -i "no matching" "$slog" | head -n 1 | sed 's/^/#   sshd: /'
}
from4=$(log_mark)
refused_legacy "KEX diffie-hellman-group14-sha1" "KexAlgorithms diffie-hellman-group14-sha1"
refused_legacy "KEX diffie-hellman-group1-sha1" "KexAlgorithms diffie-hellman-group1-sha1"
refused_legacy "KEX diffie-hellman-group-exchange-sha1" "KexAlgorithms diffie-hellman-group-exchange-sha1"
refused_legacy "cipher aes128-cbc" "Ciphers aes128-cbc,aes256-cbc"
refused_legacy "cipher 3des-cbc" "Ciphers 3des-cbc"
refused_legacy "cipher chacha20-poly1305" "Ciphers chacha20-poly1305@openssh.com"
refused_legacy "MAC hmac-sha1" "Ciphers aes128-ctr" "MACs hmac-sha1,hmac-sha1-96"
refused_legacy "MAC hmac-md5" "Ciphers aes128-ctr" "MACs hmac-md5"
refused_legacy "MAC hmac-sha2-256-etm" "Ciphers aes128-ctr" "MACs hmac-sha2-256-etm@openssh.com"
check "n1 agreed on nothing with any legacy-only sshd" not logged "$from4" "SSH to [127.0.0.1]:$p2: kex"

# An RSA-only host: n1 knows it only by its RSA key.
ssh-keygen -q -t rsa -b 2048 -N '' -C host-n2-rsa -f "$T/n2/sshd/ssh_host_rsa_key" || it_abort "ssh-keygen rsa"
sed "s|^HostKey .*|HostKey $T/n2/sshd/ssh_host_rsa_key|" "$T/sshd_config.base" >"$T/sshd_config.rsa"
cp -- "$T/sshd_config.rsa" "$T/sshd_config.base"
check "n2's sshd has only an RSA host key" sshd_with
echo "[127.0.0.1]:$p2 $(cut -d' ' -f1,2 "$T/n2/sshd/ssh_host_rsa_key.pub")" >"$kh"
from=$(log_mark)
check "n1 restarts knowing n2 by its RSA key only" restart_n1
check "n1 refuses: it cannot check an RSA host key without SHA-1" \
	wait_until "$WAIT" logged "$from" "[127.0.0.1]:$p2 only keys libssh2" "without SHA-1"
show "$from" "without SHA-1"
check "the waiting session still does not reach n2 within 2 s" stays_away 2 "$sid"

# ------------------------------------------------ back to a modern sshd
cp -- "$T/kh.good" "$kh"
sed "s|^HostKey .*|HostKey $T/n2/sshd/ssh_host_ed25519_key|" "$T/sshd_config.rsa" >"$T/sshd_config.base"
check "n2's sshd back to its defaults" sshd_with
check "n1 restarts" restart_n1
check "the waiting session arrives on n2" arrives "$sid"

check "cluster stops cleanly" cluster_stop
it_finish
