#!/usr/bin/env bash
# bench/ready.sh N: time from a returning node's start to "ready" (called by
# bench/run, so by `make bench`; figures, not pass/fail).
#
# 3 nodes on loopback (sshd + sessyncd each, session dirs on tmpfs). N
# PHP-like sessions (~1 KB) are written straight into n2's session dir; the
# daemons replicate them to n3 and n1. Then, with n1's daemon stopped:
#   (b) 1% of the sessions are rewritten on n2 (PHP's way, in place) and
#       reach n3: n1 must receive only those;
#   (a) n1's session dir is emptied (a wiped tmpfs): n1 must receive all.
# For each case: the wall time from daemon_start to `--wait-ready` exiting 0
# (which polls every 100 ms; the daemon's own "ready: ... X ms after start"
# is printed beside it), what the peers sent n1 (--status --json of n2 and
# n3: frames sent, applied, bytes_sent), n1's RSS at ready, whether n1's dir
# equals n2's at that moment, and the time of `rsync -a` of n2's dir over
# n2's sshd into a tmpfs dir in the same state as n1's (empty, or holding
# the pre-change copy). rsync logs in with a second key in n2's
# authorized_keys, bound to no command (restrict only).
#
# Bounded: every wait has a deadline (READY_WAIT_S for --wait-ready, 180 s
# by default); on a miss it prints what it reached and goes on.
# shellcheck disable=SC2317  # helpers run through wait_until
set -u -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
N=${1:-10000}
READY_WAIT_S=${READY_WAIT_S:-180}
CONVERGE_S=${CONVERGE_S:-$((60 + N / 1000))}

# rsync is this benchmark's own dependency (not make check's): installed
# here if missing, the way tests/deps installs (apt-get, Debian packages).
if ! command -v rsync >/dev/null; then
  echo "   (installing rsync for the comparison)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rsync >/dev/null 2>&1 ||
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rsync >/dev/null; } ||
    echo "   (rsync could not be installed: no comparison)"
fi

. "$repo/tests/integration/lib.sh"
export IT_LOG_LEVEL=warn
it_init "ready-$N" >/dev/null
it_require_daemon
cluster_create 3 >/dev/null || it_abort "cluster setup failed"
# n1's log at info: the "ready: ..." and "caught up" lines are read from it.
sed -i 's/^log_level .*/log_level        = info/' "$(node_conf 1)"

# tmpfs holds a 1 KB file in a 4 KB page.
mb=$((N * 5 / 1000 + 64))
mkdir -p "$T/rsync_dst"
for d in "$(node_sessions 1)" "$(node_sessions 2)" "$(node_sessions 3)" "$T/rsync_dst"; do
  it_mount_tmpfs "$d" "${mb}m" || echo "   (cannot mount tmpfs on $d: not root? measuring on disk)"
done

# The rsync key: a second line in n2's authorized_keys, without command=.
ssh-keygen -q -t ed25519 -N '' -C rsync-bench -f "$T/rsync_key" || it_abort "ssh-keygen"
echo "restrict $(cut -d' ' -f1,2 "$T/rsync_key.pub") rsync-bench" >>"$T/n2/sshd/authorized_keys"

cluster_start >/dev/null || it_abort "cluster did not start"

# ------------------------------------------------------------------ helpers

# status_json I: node I's --status --json (empty on failure).
status_json() { sessync_cli "$1" --status --json 2>/dev/null; }

# peer_field I PEER FIELD: one per-peer field of node I's status.
peer_field() {
  status_json "$1" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
for p in d["peers"]:
    if p["name"] == sys.argv[1]:
        v = p[sys.argv[2]]
        print(str(v).lower() if isinstance(v, bool) else v)
' "$2" "$3"
}

all_connected() {
  local i
  for i in 1 2 3; do
    [[ $(status_json "$i" | grep -o '"connected": true' | wc -l) == 2 ]] || return 1
  done
}

# pending_zero I PEER: node I has nothing pending for PEER.
pending_zero() { [[ $(peer_field "$1" "$2" pending) == 0 ]]; }

nfiles() { find "$1" -maxdepth 1 -name 'sess_*' -type f | wc -l; }
all_have() { (($(nfiles "$(node_sessions 1)") >= $1 && $(nfiles "$(node_sessions 3)") >= $1)); }

# peers_settled: n2 and n3 have nothing pending for anyone.
peers_settled() {
  [[ $(status_json 2 | grep -o '"pending": 0,' | wc -l) == 2 && $(status_json 3 | grep -o '"pending": 0,' | wc -l) == 2 ]]
}

# write_sessions DIR N: N PHP-like sessions (~1 KB, PHP's serialize format,
# 26-character ids as PHP makes them), written as PHP's files handler does.
write_sessions() {
  python3 - "$1" "$2" <<'PY'
import fcntl, hashlib, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
alpha = "0123456789abcdefghijklmnopqrstuv"
def sid(i):
    h = hashlib.blake2b(b"%d" % i, digest_size=20).digest()
    return "".join(alpha[b & 31] for b in h)[:26]
def body(i, rev):
    h = hashlib.sha256(b"%d" % i).hexdigest()   # a change (rev 1) alters a few fields only
    user = "user%06d" % i
    s = ('user_id|i:%d;username|s:%d:"%s";email|s:%d:"%s@example.com";'
         'roles|a:2:{i:0;s:4:"user";i:1;s:6:"editor";}csrf_token|s:64:"%s";'
         'login_time|i:%d;last_seen|i:%d;rev|i:%d;'
         % (i, len(user), user, len(user) + 12, user, h, 1700000000 + i, int(time.time()), rev))
    cart = 'cart|a:3:{i:0;a:3:{s:3:"sku";s:8:"SKU%05d";s:3:"qty";i:%d;s:5:"price";d:%d.99;}' % (i % 99991, rev + 1, i % 500)
    cart += 'i:1;a:3:{s:3:"sku";s:8:"SKU%05d";s:3:"qty";i:1;s:5:"price";d:19.99;}' % ((i * 7) % 99991)
    cart += 'i:2;a:3:{s:3:"sku";s:8:"SKU%05d";s:3:"qty";i:2;s:5:"price";d:4.5;}}' % ((i * 13) % 99991)
    pad = (h * 16)[: max(0, 1024 - len(s) - len(cart) - 40)]
    prefs = 'flash|s:%d:"%s";' % (len(pad), pad)
    return (s + cart + prefs).encode()
mode = os.environ.get("MODE", "create")
step = int(os.environ.get("STEP", "100"))
t = time.time()
count = 0
for i in range(n):
    if mode == "change" and i % step:
        continue
    p = "%s/sess_%s" % (d, sid(i))
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, body(i, 1 if mode == "change" else 0), 0)
    os.close(fd)
    count += 1
print("%d %.2f" % (count, time.time() - t))
PY
}

# compare A B: "missing differing" of B's sess_ files in A (content and mtime ns).
compare() {
  python3 - "$1" "$2" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
missing = differ = 0
for e in os.scandir(b):
    if not e.name.startswith("sess_"):
        continue
    pa = os.path.join(a, e.name)
    try:
        sa = os.stat(pa)
    except FileNotFoundError:
        missing += 1
        continue
    sb = e.stat()
    if sa.st_mtime_ns != sb.st_mtime_ns or sa.st_size != sb.st_size:
        differ += 1
        continue
    with open(pa, "rb") as fa, open(e.path, "rb") as fb:
        if fa.read() != fb.read():
            differ += 1
print(missing, differ)
PY
}
converged() { [[ $(compare "$1" "$2") == "0 0" ]]; }

# rsync_time DIR: rsync -a n2's dir into DIR over n2's sshd; "ms bytes-received files".
rsync_time() {
  local t0 t1 out
  command -v rsync >/dev/null || { echo "- - -"; return; }
  t0=$(now_ms)
  out=$(rsync -a --stats -e "ssh -p $(node_port 2) -i $T/rsync_key -o IdentitiesOnly=yes -o BatchMode=yes \
      -o UserKnownHostsFile=$T/n1/known_hosts -o StrictHostKeyChecking=yes" \
      "127.0.0.1:$(node_sessions 2)/" "$1/" 2>&1) || { echo "failed: ${out##*$'\n'}" >&2; echo "- - -"; return; }
  t1=$(now_ms)
  echo "$((t1 - t0)) $(awk -F': ' '/^Total bytes received/ {gsub(",", "", $2); print $2}' <<<"$out") \
$(awk -F': ' '/^Number of regular files transferred/ {gsub(",", "", $2); print $2}' <<<"$out")"
}

# cpu_ms PID...: user+sys CPU of the PIDs, with their reaped children's, in ms.
cpu_ms() {
  local p t=0 f
  for p in "$@"; do
    f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + $(awk '{print $12 + $13 + $14 + $15}' <<<"$f")))
  done
  echo $((t * 1000 / $(getconf CLK_TCK)))
}
# ssh_cpu_ms: the three sshds, their connections and the relays they run.
ssh_cpu_ms() {
  local i p
  local -a all=()
  for i in 1 2 3; do
    p=$(cat "$T/n$i/sshd/pid")
    mapfile -t -O "${#all[@]}" all < <(echo "$p"; _it_descendants "$p")
  done
  cpu_ms "${all[@]}"
}

# counters PEER_NODE: "sent applied bytes_sent" of that node towards n1.
counters() {
  status_json "$1" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["peers"]:
    if p["name"] == "n1":
        print(p["sent"], p["applied"], p["bytes_sent"])'
}

# BENCH_PROFILE=perf or =strace (not in make bench; strace slows the run a
# lot): from just after daemon_start to ready, perf record -a (every
# process: daemons, relays, sshd; summaries by process and by symbol), or
# strace -c -f of n1's daemon (syscall counts). Files in $T (KEEP=1 keeps
# them).
PROF_PID=""
profile_start() {
  case $BENCH_PROFILE in
    perf) perf record -a -g -o "$T/perf.$1" >/dev/null 2>&1 & ;;
    strace) strace -c -f -o "$T/strace.$1" -p "$(daemon_pid 1)" 2>/dev/null & ;;
    *) return ;;
  esac
  PROF_PID=$!
}
profile_stop() {
  [[ -n $PROF_PID ]] || return 0
  kill -INT "$PROF_PID" 2>/dev/null
  wait "$PROF_PID" 2>/dev/null
  PROF_PID=""
  if [[ $BENCH_PROFILE == perf ]]; then
    echo "     -- perf ($1), all CPUs: by process, by process and library, n1+peers' sessyncd by symbol"
    perf report -i "$T/perf.$1" --stdio --no-children --sort comm -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -8 | sed 's/^/     /'
    perf report -i "$T/perf.$1" --stdio --no-children --sort comm,dso -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -12 | sed 's/^/     /'
    perf report -i "$T/perf.$1" --stdio --no-children --comm sessyncd --sort sym -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -25 | sed 's/^/     /'
  else
    echo "     -- strace -c -f of n1's daemon ($1)"
    head -n 22 "$T/strace.$1" | sed 's/^/     /'
  fi
}

# measure CASE EXPECT RSYNC_FIGURES TAG: start n1, wait for ready, print figures.
measure() {
  local what=$1 expect=$2 rs=$3 tag=${4:-x} c_n1 c_peers c_ssh load t0 t1 rc pid rss hwm b2 b3 a2 a3 s2 s3 log_from ready_line cmp settle=""
  read -r load _ </proc/loadavg
  read -r -a b2 <<<"$(counters 2)"
  read -r -a b3 <<<"$(counters 3)"
  log_from=$(($(wc -l <"$(node_log 1)") + 1))
  c_peers=$(cpu_ms "$(daemon_pid 2)" "$(daemon_pid 3)")
  c_ssh=$(ssh_cpu_ms)
  t0=$(now_ms)
  daemon_start 1 >/dev/null || { echo "   $what: n1 did not start"; return 1; }
  [[ -n ${BENCH_PROFILE:-} ]] && profile_start "$tag"
  # sessync_cli's own bound (IT_CLI_TIMEOUT, 30 s) would cut a long wait short.
  IT_CLI_TIMEOUT=$((READY_WAIT_S + 10)) sessync_cli 1 --wait-ready "$READY_WAIT_S" \
    >"$T/n1/wait_ready.out" 2>"$T/n1/wait_ready.err"
  rc=$?
  t1=$(now_ms)
  [[ -n ${BENCH_PROFILE:-} ]] && profile_stop "$tag"
  pid=$(daemon_pid 1)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  c_n1=$(cpu_ms "$pid")
  c_peers=$(($(cpu_ms "$(daemon_pid 2)" "$(daemon_pid 3)") - c_peers))
  c_ssh=$(($(ssh_cpu_ms) - c_ssh))
  read -r -a a2 <<<"$(counters 2)"
  read -r -a a3 <<<"$(counters 3)"
  cmp=$(compare "$(node_sessions 1)" "$(node_sessions 2)")
  ready_line=$(tail -n "+$log_from" "$(node_log 1)" | grep -m1 'ready: caught up' | sed 's/.*ready: //')
  echo "   $what:"
  if ((rc != 0)); then
    echo "     NOT READY after $((t1 - t0)) ms (wait-ready exit $rc): $(tail -n 1 "$T/n1/wait_ready.err")"
  fi
  ((rc == 0)) && echo "     start -> --wait-ready exit 0: $((t1 - t0)) ms wall (daemon's log: ${ready_line:-no ready line})"
  echo "     received: $(((a2[1] - b2[1]) + (a3[1] - b3[1]))) applied of $(((a2[0] - b2[0]) + (a3[0] - b3[0]))) frames" \
    "(n2 $((a2[1] - b2[1]))/$((a2[0] - b2[0])), n3 $((a3[1] - b3[1]))/$((a3[0] - b3[0]))); expected $expect changed sessions"
  echo "     per peer, wanted: $(tail -n "+$log_from" "$(node_log 1)" | grep -o 'peer "n[0-9]": caught up ([0-9]* received)' |
    sed 's/peer "\(n[0-9]\)": caught up (\([0-9]*\) received)/\1 \2/' | paste -sd, - | sed 's/,/, /g')"
  echo "     bytes_sent to n1: $(((a2[2] - b2[2]) + (a3[2] - b3[2]))) (n2 $((a2[2] - b2[2])), n3 $((a3[2] - b3[2])))" \
    "= $(((a2[2] - b2[2] + a3[2] - b3[2]) / (expect > 0 ? expect : 1))) B per changed session"
  echo "     n1 RSS at ready: ${rss} kB (peak ${hwm} kB)"
  echo "     CPU from start to ready: n1's daemon ${c_n1} ms, n2+n3 daemons ${c_peers} ms," \
    "sshds+relays ${c_ssh} ms (2 cores: $((2 * (t1 - t0))) ms available; load average before: $load)"
  echo "     n1's dir vs n2's at ready: $(cut -d' ' -f1 <<<"$cmp") missing, $(cut -d' ' -f2 <<<"$cmp") differing"
  if wait_until 30 peers_settled; then
    read -r -a s2 <<<"$(counters 2)"
    read -r -a s3 <<<"$(counters 3)"
    settle="$(((s2[2] - b2[2]) + (s3[2] - b3[2]))) bytes, $(((s2[0] - b2[0]) + (s3[0] - b3[0]))) frames once peers had 0 pending"
  fi
  [[ -n $settle ]] && echo "     settled: $settle; dir vs n2: $(compare "$(node_sessions 1)" "$(node_sessions 2)" | awk '{print $1 " missing, " $2 " differing"}')"
  read -r rms rbytes rfiles <<<"$rs"
  echo "     rsync -a of n2's dir over n2's sshd, same starting state: ${rms} ms, ${rbytes} bytes received, ${rfiles} files"
}

# ------------------------------------------------------------------ setup

wait_until 20 all_connected || it_abort "the 3 nodes did not connect"
echo "== time to ready, 3 nodes, $N sessions of ~1 KB held by n1's 2 peers (bench/ready.sh)"
read -r cnt secs <<<"$(write_sessions "$(node_sessions 2)" "$N")"
t0=$(now_ms)
if ! wait_until "$CONVERGE_S" all_have "$N"; then
  echo "   setup: not replicated in ${CONVERGE_S} s (n1 $(nfiles "$(node_sessions 1)"), n3 $(nfiles "$(node_sessions 3)") of $N)"
  it_finish >/dev/null
fi
wait_until 30 pending_zero 2 n1
wait_until 30 pending_zero 2 n3
echo "   setup: $cnt written into n2 in ${secs} s; on n1 and n3 $(($(now_ms) - t0)) ms later;" \
  "n1 vs n2: $(compare "$(node_sessions 1)" "$(node_sessions 2)" | awk '{print $1 " missing, " $2 " differing"}')," \
  "$(du -sk "$(node_sessions 2)" | cut -f1) kB on tmpfs"

# ------------------------------------------------------------------ (b) 1% changed

daemon_stop 1 >/dev/null
cp -a "$(node_sessions 1)/." "$T/rsync_dst/"
read -r changed _ <<<"$(MODE=change STEP=100 write_sessions "$(node_sessions 2)" "$N")"
wait_until "$CONVERGE_S" converged "$(node_sessions 3)" "$(node_sessions 2)" ||
  echo "   (n3 did not get the changes in ${CONVERGE_S} s)"
rs=$(rsync_time "$T/rsync_dst")
measure "(b) n1 down while $changed sessions (1%) changed on n2 (and reached n3)" "$changed" "$rs" changed

# ------------------------------------------------------------------ (a) wiped

daemon_stop 1 >/dev/null
find "$(node_sessions 1)" -mindepth 1 -delete
find "$T/rsync_dst" -mindepth 1 -delete
rs=$(rsync_time "$T/rsync_dst")
measure "(a) n1's session dir wiped while it was down" "$N" "$rs" wiped

it_finish >/dev/null
