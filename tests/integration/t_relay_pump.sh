#!/usr/bin/env bash
# The --serve relay never blocks one direction on the other (docs/DESIGN.md
# "Connections"), whatever the daemon does: here a stand-in daemon on the
# socket (python) answers with 12 MB and reads nothing until all of it is
# written, the way the daemon stopped reading above its 8 MiB mark on main,
# while the pusher (python, on the relay's stdin/stdout) sends 8 MB and
# reads the answer. A relay that blocks writing the pusher's bytes to the
# daemon never drains the daemon's answer: both sides wait for ever.
# The stand-in is a daemon older than the hand-off (docs/DESIGN.md
# "Connections"): it answers the relay's RELAY + HANDOFF (and its two fds)
# with an ERROR and closes, as an unknown frame; the relay then copies over
# a second connection.
# Checked: the first connection offered stdin and stdout (2 fds), all 12 MB
# reach the pusher and all 8 MB (after the RELAY frame) reach the daemon on
# the second, within 20 s. No sshd, no real daemon: the relay alone.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_relay_pump
it_require_daemon

mkdir -m 0700 "$T/sessions" "$T/state" || it_abort "mkdir"
: >"$T/id" && : >"$T/id.pub" && : >"$T/known_hosts"
cat >"$T/relay.conf" <<EOF2
[node]
name        = r1
session_dir = $T/sessions
state_dir   = $T/state
socket      = $T/relay.sock
identity    = $T/id
known_hosts = $T/known_hosts

[peer r2]
host = 127.0.0.1
EOF2

cat >"$T/pump.py" <<'PY'
import os, socket, subprocess, sys, threading, time
sessyncd, conf, sock_path = sys.argv[1:4]
ANSWER, PUSH = 12_000_000, 8_000_000
srv = socket.socket(socket.AF_UNIX)
srv.bind(sock_path)
srv.listen(1)
got_daemon = []
offered = []
def old_daemon_refuses(c):
    data, fds = b"", []
    while len(data) < 9 or len(data) < 4 + int.from_bytes(data[:4], "big") + 9:
        b, f, _, _ = socket.recv_fds(c, 4096, 8)
        if not b:
            break
        data += b
        fds += f
    for f in fds:
        os.close(f)
    t = 4 + int.from_bytes(data[:4], "big")
    offered.append("%d:%d:%d" % (data[4], data[t + 4] if len(data) > t + 4 else -1, len(fds)))
    why = b"unknown frame type"
    c.sendall((5 + 4 + len(why)).to_bytes(4, "big") + bytes([14]) + b"\0\0\0\0" + len(why).to_bytes(4, "big") + why)
    c.close()
def daemon():
    c, _ = srv.accept()
    old_daemon_refuses(c)
    c, _ = srv.accept()
    c.sendall(b"a" * ANSWER)            # reads nothing until all is written
    n = 0
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        n += len(b)
    got_daemon.append(n)
    c.close()
threading.Thread(target=daemon, daemon=True).start()
p = subprocess.Popen([sessyncd, "-c", conf, "--serve", "--from", "r2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def push():
    for _ in range(PUSH // 65536):
        p.stdin.write(b"p" * 65536)
    p.stdin.write(b"p" * (PUSH % 65536))
    p.stdin.close()
threading.Thread(target=push, daemon=True).start()
n = 0
while True:
    b = p.stdout.read1(1 << 16)
    if not b:
        break
    n += len(b)
p.wait()
for _ in range(100):
    if got_daemon:
        break
    time.sleep(0.05)
print(n, got_daemon[0] if got_daemon else -1, p.returncode, offered[0] if offered else "-")
PY
t0=$(now_ms)
out=$(timeout 20 python3 "$T/pump.py" "$SESSYNCD" "$T/relay.conf" "$T/relay.sock")
rc=$?
it_note "measured: relay moved 12 MB back and 8 MB forth in $(($(now_ms) - t0)) ms (python: '$out', exit $rc)"
assert_eq "$rc" 0 "the relay finished within 20 s"
read -r back forth status offer <<<"$out"
# RELAY (11), then HANDOFF (16) with stdin and stdout.
assert_eq "${offer:-}" "11:16:2" "the relay offered the daemon its stdin and stdout first (RELAY, HANDOFF, 2 fds)"
assert_eq "${back:-}" 12000000 "all 12 MB of the daemon's answer reached the pusher"
# The daemon also got the relay's RELAY frame (its first bytes).
if [[ ${forth:-} =~ ^[0-9]+$ ]] && ((forth > 8000000 && forth < 8000000 + 128)); then
	ok "all 8 MB of the pusher's bytes reached the daemon, after the RELAY frame ($forth bytes)"
else
	fail "all 8 MB of the pusher's bytes reached the daemon, after the RELAY frame ('${forth:-}' bytes)"
fi
assert_eq "${status:-}" 0 "the relay exits 0"
it_finish
