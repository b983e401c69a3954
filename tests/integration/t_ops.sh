#!/usr/bin/env bash
# What an operator touches: --status (table and the exact JSON of the
# Interface), metrics_file, --check-config errors, exit codes, the N;/path
# refusal, log levels and journald prefixes, no session contents in logs,
# make install with DESTDIR, the man pages.
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
it_init t_ops
it_require_daemon
it_require_tags
repo=$(cd "$here/../.." && pwd)

cluster_create 2 || it_abort "cluster setup failed"
# metrics for node 1
sed -i "/^\[node\]/a metrics_file = $T/n1/sessync.prom" "$(node_conf 1)"
cluster_start || it_abort "cluster did not start"
wait_until 10 bash -c "'$SESSYNCD' -c '$(node_conf 1)' --status --json | grep -q '\"connected\": true'" ||
  fail "n1 connected to n2"

secret="SECRET-$RANDOM-$RANDOM"
php_session 1 opsa "\$_SESSION['token'] = '$secret';"
wait_until 5 files_equal "$(node_sess_file 1 opsa)" "$(node_sess_file 2 opsa)" || fail "session replicated"

# ---- --status --json: exactly the Interface's fields
json=$("$SESSYNCD" -c "$(node_conf 1)" --status --json)
assert_eq "$?" 0 "--status --json exits 0"
py=$(python3 - "$json" <<'PY'
import json, sys
o = json.loads(sys.argv[1])
top = ["node", "sessions", "tombstones", "skipped", "ready", "unreadable", "unreadable_total", "lock_retries",
       "unseen_tombstones", "unseen_forgotten", "peers"]
peer = ["name", "connected", "pending", "lag_ms", "sent", "applied", "bytes_sent", "bytes_full", "conflicts", "refused_new",
        "last_error", "catchup"]
assert list(o) == top, list(o)
assert o["node"] == "n1" and o["sessions"] == 1 and o["tombstones"] == 0 and o["skipped"] == 0, o
assert len(o["peers"]) == 1
p = o["peers"][0]
assert list(p) == peer, list(p)
assert p["name"] == "n2" and p["connected"] is True and p["pending"] == 0, p
assert p["sent"] >= 1 and p["applied"] >= 1 and p["bytes_full"] >= p["bytes_sent"] > 0, p
assert p["last_error"] is None and isinstance(p["lag_ms"], int) and p["conflicts"] == 0, p
assert o["ready"] is True and p["catchup"] == "done", (o["ready"], p["catchup"])
print("ok")
PY
)
assert_eq "$py" ok "--status --json has exactly the Interface's fields and sane values"

table=$("$SESSYNCD" -c "$(node_conf 1)" --status)
assert_contains "$table" "node n1: 1 sessions" "--status table: node line"
assert_contains "$table" "PEER" "--status table: header"
check "--status table: one row for n2, connected" grep -Eq '^n2 +connected' <<<"$table"

# ---- metrics_file: textfile format, replaced atomically
prom=$T/n1/sessync.prom
wait_until 8 grep -q 'sessync_peer_sent_total{node="n1",peer="n2"} [1-9]' "$prom" ||
  fail "metrics_file written with n2's counters"
for m in sessync_sessions sessync_tombstones sessync_skipped sessync_skipped_total sessync_peer_connected sessync_peer_pending sessync_peer_lag_seconds \
         sessync_peer_sent_total sessync_peer_applied_total sessync_peer_bytes_sent_total \
         sessync_peer_bytes_full_total sessync_peer_conflicts_total sessync_peer_errors_total; do
  grep -q "^# HELP $m " "$prom" && grep -q "^# TYPE $m " "$prom" && grep -q "^$m{" "$prom" ||
    fail "metric $m with HELP and TYPE"
done
ok "metrics_file has every metric with HELP and TYPE"
check "metrics_file: connected=1 for n2" grep -q 'sessync_peer_connected{node="n1",peer="n2"} 1' "$prom"
ino1=$(stat -c %i "$prom")
wait_until 8 bash -c "[ \$(stat -c %i '$prom') != $ino1 ]" && ok "metrics_file replaced by rename (new inode)" ||
  fail "metrics_file replaced by rename"
check "no temporary metrics file left" test ! -e "$prom.tmp"

# ---- logs: no session contents, levels, peer and name in quotes
check "debug log never holds session contents" not grep -q "$secret" "$(node_log 1)" "$(node_log 2)"
check "log lines name the session by its tag" grep -qF "session $(sid_tag opsa):" "$(node_log 1)"
check "... never by its id" not grep -qF "opsa" "$(node_log 1)" "$(node_log 2)"
out=$(JOURNAL_STREAM=8:1234 "$SESSYNCD" -c "$(node_conf 1)" --full-sync 2>&1 >/dev/null)
check "under journald, lines carry <N> priorities" grep -Eq '^<[3467]>' <<<"$out"
sed 's/^log_level *=.*/log_level = error/' "$(node_conf 1)" >"$T/quiet.conf"
out=$("$SESSYNCD" -c "$T/quiet.conf" --full-sync 2>&1 >/dev/null)
assert_eq "$out" "" "log_level = error: an uneventful --full-sync logs nothing"

# ---- exit codes and config errors
"$SESSYNCD" --version >/dev/null; assert_eq $? 0 "--version exits 0"
"$SESSYNCD" --help | grep -q -- "--full-sync"; assert_eq $? 0 "--help lists the commands"
"$SESSYNCD" --bogus >/dev/null 2>&1; assert_eq $? 2 "unknown option exits 2"
"$SESSYNCD" -c "$(node_conf 1)" --status --serve >/dev/null 2>&1; assert_eq $? 2 "two commands exit 2"
out=$("$SESSYNCD" -c "$(node_conf 1)" --check-config); assert_eq $? 0 "--check-config on a good file exits 0"
printf '[node]\nname = bad name\nsession_dir = relative\nbogus = 1\n[peer n1]\n' >"$T/bad.conf"
out=$("$SESSYNCD" -c "$T/bad.conf" --check-config 2>&1); rc=$?
assert_eq "$rc" 2 "--check-config on a bad file exits 2"
assert_contains "$out" "$T/bad.conf:2: name:" "error names file:line: key (name)"
assert_contains "$out" "$T/bad.conf:3: session_dir:" "error names file:line: key (session_dir)"
assert_contains "$out" "$T/bad.conf:4: bogus:" "unknown key reported with its line"
"$SESSYNCD" -c "$T/missing.conf" --check-config >/dev/null 2>&1; assert_eq $? 2 "missing config exits 2"
sed "s|^session_dir *= *\(.*\)|session_dir = 2;\1|" "$(node_conf 1)" >"$T/depth.conf"
out=$("$SESSYNCD" -c "$T/depth.conf" --check-config 2>&1); rc=$?
assert_eq "$rc" 2 "N;/path save_path refused at --check-config"
assert_contains "$out" "not supported" "the refusal says why"
"$SESSYNCD" -c "$T/depth.conf" >/dev/null 2>&1; assert_eq $? 2 "and the daemon refuses to start with it"
# One truth: what the user reads about N;/path says what the code does.
top=$(cd "$(dirname "$0")/../.." && pwd)
check "the example config says N;/path is refused" grep -q '"N;/path" and "N;MODE;/path" (sessions in N' "$top/conf/sessync.conf"
check "... and nothing there says it is accepted" not grep -qi 'N;/path.*accepted' "$top/conf/sessync.conf"
check "the man page says it is refused" bash -c "man -l '$top/man/sessync.conf.5' 2>/dev/null | tr -s ' \n' ' ' | grep -q 'levels of subdirectories) is refused'"
check "the README says it is refused" grep -q 'N;/path"` (sessions in N levels of subdirectories) is refused' "$top/README.md"
daemon_stop 2 >/dev/null
"$SESSYNCD" -c "$(node_conf 2)" --status >/dev/null 2>&1; assert_eq $? 1 "--status without a daemon exits 1"
"$SESSYNCD" -c "$(node_conf 1)" >"$T/second.log" 2>&1; rc=$?
assert_eq "$rc" 1 "a second daemon on the same node exits 1"
check "... saying another sessyncd holds it" grep -qi "another sessyncd" "$T/second.log"

# ---- make install with DESTDIR and PREFIX, man pages
make -s -C "$repo" install DESTDIR="$T/root" PREFIX=/usr >/dev/null 2>&1; assert_eq $? 0 "make install DESTDIR=... PREFIX=/usr"
check "installed the binary" test -x "$T/root/usr/sbin/sessyncd"
check "installed sessyncd(8)" test -f "$T/root/usr/share/man/man8/sessyncd.8"
check "installed sessync.conf(5)" test -f "$T/root/usr/share/man/man5/sessync.conf.5"
for m in "$repo/man/sessyncd.8" "$repo/man/sessync.conf.5"; do
  warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
  assert_eq "$warn" "" "$(basename "$m") renders without warnings"
done
check "the example config loads" "$SESSYNCD" -c "$repo/conf/sessync.conf" --check-config

# ---- the systemd unit: valid, sandboxed, restarts on failure
unit=$repo/conf/sessyncd.service
for k in ProtectSystem=strict ReadWritePaths= NoNewPrivileges=yes PrivateTmp=yes Restart=on-failure; do
  check "unit has $k" grep -q "^$k" "$unit"
done
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$T/unit"
  sed "s|/usr/local/sbin/sessyncd|$SESSYNCD|g" "$unit" >"$T/unit/sessyncd.service"
  out=$(systemd-analyze verify --man=no "$T/unit/sessyncd.service" 2>&1); rc=$?
  assert_eq "$rc" 0 "systemd-analyze verify accepts the unit${out:+: $out}"
  # The socket unit (socket activation: docs/DESIGN.md "The socket"), with
  # the service it starts; an unknown key is reported, exit 0: silence is the pass.
  cp "$repo/conf/sessyncd.socket" "$T/unit/"
  out=$(SYSTEMD_UNIT_PATH="$T/unit:" systemd-analyze verify --man=no "$T/unit/sessyncd.socket" "$T/unit/sessyncd.service" 2>&1); rc=$?
  assert_eq "$rc:$out" "0:" "systemd-analyze verify accepts sessyncd.socket with the service, saying nothing"
  check "the socket unit listens on the example config's socket" \
    grep -qx "ListenStream=$(sed -n 's/^socket *= *//p' "$repo/conf/sessync.conf")" "$repo/conf/sessyncd.socket"
  check "the service keeps its RuntimeDirectory (the socket's) when it stops" grep -qx 'RuntimeDirectoryPreserve=yes' "$unit"
  # The web servers' drop-ins (README step 8), on stand-ins for the units
  # Debian ships: ordered after sessyncd, --wait-ready before they start.
  for web in php8.2-fpm nginx; do
    dropin=$repo/conf/systemd/$web.service.d/sessync.conf
    mkdir -p "$T/unit/$web.service.d"
    printf '[Unit]\nDescription=stand-in for %s\n[Service]\nExecStart=/bin/true\n' "$web" >"$T/unit/$web.service"
    sed "s|/usr/local/sbin/sessyncd|$SESSYNCD|g" "$dropin" >"$T/unit/$web.service.d/sessync.conf"
    # verify reports a bad drop-in line but still exits 0: silence is the pass.
    out=$(SYSTEMD_UNIT_PATH="$T/unit:" systemd-analyze verify --man=no "$T/unit/$web.service" 2>&1); rc=$?
    assert_eq "$rc:$out" "0:" "systemd-analyze verify accepts $web with the sessync drop-in, saying nothing"
    check "$web's drop-in orders it after sessyncd" grep -q '^After=sessyncd.service' "$dropin"
    check "$web's drop-in runs --wait-ready before it starts" grep -q '^ExecStartPre=.* --wait-ready ' "$dropin"
  done
else
  fail "systemd-analyze is missing (tests/deps installs systemd): the unit is not verified"
fi

it_finish
