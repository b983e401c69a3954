#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# The relay's hand-off (docs/DESIGN.md "Connections"): each inbound peer's
# `--serve` passes its stdin and stdout (sshd's pipes) to the daemon and
# sleeps; the daemon serves the peer on the pipes.
# Checked, on 3 nodes over real sshds:
#   - every relay holds /dev/null as stdin and stdout, and sleeps; each
#     daemon holds 2 pipes per inbound peer; a write replicates;
#   - a relay's RSS (printed: the figure for docs/DESIGN.md "Performance");
#   - n2's daemon killed -9: its relays exit (sshd ends those sessions), n1
#     and n3 see the link down, and reconnect to the restarted daemon;
#   - a local client (root, so it passes the socket's check) that hands
#     over a regular file and a pipe gets ERROR "not a pipe or a socket",
#     the file is neither read nor written, and the daemon serves on.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_handoff
it_require_daemon

cluster_create 3 && cluster_start || it_abort "cluster did not start"
all_up() {
	local i j
	for i in 1 2 3; do for j in 1 2 3; do
		[[ $i == "$j" ]] || peer_connected "$i" "n$j" || return 1
	done; done
}
check "the 3 nodes connect" wait_until 20 all_up

# relays I: PIDs of the --serve relays under node I's sshd.
relays() {
	local p
	for p in $(_it_descendants "$(cat "$T/n$1/sshd/pid")"); do
		grep -qa -- "--serve" "/proc/$p/cmdline" 2>/dev/null && echo "$p"
	done
}
# handed I: node I has 2 relays, each with /dev/null on fds 0 and 1, asleep.
handed() {
	local p n=0
	for p in $(relays "$1"); do
		[[ $(readlink "/proc/$p/fd/0") == /dev/null && $(readlink "/proc/$p/fd/1") == /dev/null ]] || return 1
		[[ $(awk '/^State/{print $2}' "/proc/$p/status") == S ]] || return 1
		n=$((n + 1))
	done
	((n == 2))
}
daemon_pipes() { find "/proc/$(daemon_pid "$1")/fd" -lname 'pipe:*' | wc -l; }
for i in 1 2 3; do
	check "n$i: both relays handed their stdin/stdout over and sleep" wait_until 10 handed "$i"
	pipes=$(daemon_pipes "$i")
	((pipes >= 4)) && ok "n$i's daemon holds its 2 inbound peers' pipes ($pipes pipes)" ||
		fail "n$i's daemon holds its 2 inbound peers' pipes ($pipes pipes)"
done
rss=$(for p in $(relays 2); do awk '/^VmRSS/{print $2}' "/proc/$p/status"; done | paste -sd' ')
pss=$(for p in $(relays 2); do awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup"; done | paste -sd' ')
it_note "measured: a sleeping relay's VmRSS kB: $rss; PSS kB: $pss"

php_session 1 ho1 '$_SESSION["n"] = 1;' || fail "php on n1"
same12() { cmp -s "$(node_sess_file 1 ho1)" "$(node_sess_file 2 ho1)"; }
same13() { cmp -s "$(node_sess_file 1 ho1)" "$(node_sess_file 3 ho1)"; }
check "a write on n1 reaches n2 over the handed-over pipes" wait_until 10 same12
check "and n3" wait_until 10 same13

# The daemon dies: its relays wake (their socket closed) and exit, so sshd
# ends those sessions and the pushers reconnect.
old=$(relays 2 | paste -sd' ')
daemon_kill9 2
gone() {
	local p
	for p in $old; do _it_alive "$p" && return 1; done
	return 0
}
check "n2's daemon killed: its relays ($old) exit" wait_until 10 gone
check "n1 sees its link to n2 down" wait_until 15 peer_down 1 n2
daemon_start 2 || fail "n2's daemon restarts"
check "n1 reconnects to n2" wait_until 30 peer_connected 1 n2
check "n3 reconnects to n2" wait_until 30 peer_connected 3 n2
check "n2's new relays are handed over too" wait_until 10 handed 2

# Someone in the socket's group hands over a regular file.
printf 'not for the daemon' >"$T/file"
cat >"$T/hostile.py" <<'PY'
import os, socket, sys
sock_path, path = sys.argv[1:3]
def frame(t, payload=b""):
    return (5 + len(payload)).to_bytes(4, "big") + bytes([t]) + b"\0\0\0\0" + payload
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
f = os.open(path, os.O_RDWR)
r, w = os.pipe()
socket.send_fds(s, [frame(11, b"\x02n1") + frame(16)], [f, w])
data = b""
s.settimeout(10)
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
kind = data[4] if len(data) > 4 else -1
why = data[13:].decode(errors="replace") if kind == 14 else ""
print(kind, os.lseek(f, 0, os.SEEK_CUR), why, sep="|")
PY
out=$(timeout 20 python3 "$T/hostile.py" "$(node_sock 2)" "$T/file")
IFS='|' read -r kind pos why <<<"$out"
assert_eq "${kind:-}" 14 "a hand-off of a regular file is answered with ERROR ('$out')"
assert_eq "${why:-}" "HANDOFF of an fd that is not a pipe or a socket" "saying why"
assert_eq "${pos:-}" 0 "the daemon did not read the file"
assert_eq "$(cat "$T/file")" "not for the daemon" "nor write it"
check "n2's daemon serves on" daemon_running 2
php_session 1 ho1 '$_SESSION["n"] = 2;' || fail "php on n1"
check "and a write on n1 still reaches n2" wait_until 10 same12

check "cluster stops cleanly" cluster_stop
it_finish
