# shellcheck shell=bash
# Helpers shared by the fault-injection tests (t_partition, t_outage,
# t_kill9, t_burst, t_diskfull, t_fullsync, t_restart). Source it after
# lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/lib_faults.sh"
#   it_init t_example
#
# Nothing here changes lib.sh's behaviour. fault_at_exit replaces the EXIT
# trap that it_init set with one that runs the registered commands first and
# then it_cleanup, with the exit status the script had (so the tally, the log
# tails on failure and the PID-based teardown still happen).

# ---------------------------------------------------------------- exit hooks

FAULT_EXIT_HOOKS=()

# fault_at_exit CMD: run CMD (a string, eval'd) when the script exits, before
# lib.sh's it_cleanup; hooks run last-registered first. Call after it_init.
fault_at_exit() {
	FAULT_EXIT_HOOKS+=("$1")
	trap _fault_exit EXIT
}

_fault_exit() {
	local rc=$? i
	trap - EXIT
	for ((i = ${#FAULT_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${FAULT_EXIT_HOOKS[i]}" || true
	done
	# it_cleanup reads the script's status from $? on entry.
	(exit "$rc")
	it_cleanup
}

# fault_stop_daemons: stop every node's daemon (by PID, as it_cleanup does),
# e.g. before unmounting a file system a daemon holds open.
fault_stop_daemons() {
	local i
	for ((i = 1; i <= IT_NODES; i++)); do
		daemon_stop "$i" >/dev/null 2>&1
	done
}

# fault_mount_tmpfs DIR SIZE: mount a tmpfs of SIZE (e.g. 1m) on DIR, mode
# 0700 like the session dir lib.sh makes; unmounted at exit after the
# daemons are stopped (a daemon keeps the directory open), before it_cleanup
# removes $T. Returns mount's status.
fault_mount_tmpfs() {
	local dir=$1 size=$2
	mount -t tmpfs -o "size=$size,mode=0700" tmpfs "$dir" || return 1
	fault_at_exit "fault_stop_daemons; _fault_umount $(printf '%q' "$dir")"
}

_fault_umount() {
	mountpoint -q -- "$1" || return 0
	umount -- "$1" 2>/dev/null || umount -l -- "$1"
}

# ---------------------------------------------------------------- waits

# stays_for SECONDS CMD...: CMD keeps succeeding for SECONDS: it is run every
# 50 ms and the first failure returns 1 at once. The opposite of wait_until,
# for "must never happen" windows (a logout that must not come back).
stays_for() {
	local deadline=$(($(now_ms) + $(_it_to_ms "$1")))
	shift
	while :; do
		"$@" || return 1
		(($(now_ms) >= deadline)) && return 0
		sleep 0.05
	done
}

# ---------------------------------------------------------------- status

# status_json I: node I's `--status --json` (empty, status 1, if it fails).
status_json() { sessync_cli "$1" --status --json 2>/dev/null; }

# daemon_answers I: node I's daemon answers --status on its socket (after a
# SIGKILL the old socket file is left, so its existence proves nothing).
daemon_answers() { status_json "$1" >/dev/null; }

# peer_stat I PEER FIELD: FIELD of PEER's entry in node I's status
# (booleans as true/false, null as empty).
peer_stat() {
	status_json "$1" | python3 -c '
import json, sys
peer, field = sys.argv[1], sys.argv[2]
st = json.load(sys.stdin)
v = [p for p in st["peers"] if p["name"] == peer][0][field]
print("" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$2" "$3" 2>/dev/null
}

# node_stat I FIELD: a top-level field of node I's status (sessions, tombstones).
node_stat() {
	status_json "$1" | python3 -c '
import json, sys
print(json.load(sys.stdin)[sys.argv[1]])' "$2" 2>/dev/null
}

# peer_connected I PEER: node I's link to PEER is up (handshake and catch-up done).
peer_connected() { [[ $(peer_stat "$1" "$2" connected) == true ]]; }

# peer_down I PEER: node I knows its link to PEER is down.
peer_down() { [[ $(peer_stat "$1" "$2" connected) == false ]]; }

# peer_settled I PEER: connected, and nothing pending or in flight for PEER.
peer_settled() {
	local s
	s=$(status_json "$1" | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["peers"] if p["name"] == sys.argv[1]][0]
print("yes" if p["connected"] and p["pending"] == 0 else "no")' "$2" 2>/dev/null)
	[[ $s == yes ]]
}

# ---------------------------------------------------------------- session dirs

# The session-dir comparer: only names PHP's files handler would use
# (sess_ + [A-Za-z0-9,-]); symlinks and other files are ignored.
_FAULT_TREE_PY='
import hashlib, os, re, sys
NAME = re.compile(r"sess_[A-Za-z0-9,-]+\Z")

def tree(d):
    out = {}
    for de in os.scandir(d):
        if not NAME.match(de.name) or not de.is_file(follow_symlinks=False):
            continue
        try:
            with open(de.path, "rb") as f:
                data = f.read()
            st = os.stat(de.path, follow_symlinks=False)
        except FileNotFoundError:
            continue
        out[de.name] = (data, st.st_mtime_ns)
    return out

mode = sys.argv[1]
if mode == "digest":
    t = tree(sys.argv[2])
    h = hashlib.sha1()
    for name in sorted(t):
        data, mt = t[name]
        h.update(b"%s %s %d\n" % (name.encode(), hashlib.sha1(data).hexdigest().encode(), mt))
    print(len(t), h.hexdigest())
    sys.exit(0)
if mode == "count":
    print(sum(1 for de in os.scandir(sys.argv[2]) if NAME.match(de.name)))
    sys.exit(0)
if mode == "subset":
    refs, b = [tree(d) for d in sys.argv[2:-1]], tree(sys.argv[-1])
    bad = sorted(n for n in b if not any(r.get(n) == b[n] for r in refs))
    for n in bad[:8]:
        print("%s: matches no reference copy" % n)
    sys.exit(1 if bad else 0)
a, b = tree(sys.argv[2]), tree(sys.argv[3])
missing = sorted(set(a) - set(b))
extra = sorted(set(b) - set(a))
content = sorted(n for n in set(a) & set(b) if a[n][0] != b[n][0])
mtime = sorted(n for n in set(a) & set(b) if a[n][0] == b[n][0] and a[n][1] != b[n][1])
if mode == "diff":
    for what, names in (("missing", missing), ("extra", extra), ("content differs", content),
                        ("mtime differs", mtime)):
        if names:
            print("%d %s: %s%s" % (len(names), what, " ".join(names[:8]), " ..." if len(names) > 8 else ""))
sys.exit(1 if missing or extra or content or mtime else 0)
'

# tree_equal DIR_A DIR_B: the same session files in both, each byte-equal
# with the same mtime to the nanosecond (what files_equal checks, for a
# whole directory).
tree_equal() { python3 -c "$_FAULT_TREE_PY" cmp "$1" "$2"; }

# tree_diff DIR_A DIR_B: print what differs (B relative to A), one line per
# kind of difference, as diagnostics; status as tree_equal.
tree_diff() { python3 -c "$_FAULT_TREE_PY" diff "$1" "$2"; }

# tree_subset REF_DIR... DIR: every session file in DIR (the last argument)
# is byte-equal, with the same mtime ns, to the file of that name in one of
# the REF_DIRs (DIR may lack some); prints the offenders. With the origin's
# dir and a dir of older versions saved from it, "no file is truncated or
# corrupt".
tree_subset() { python3 -c "$_FAULT_TREE_PY" subset "$@"; }

# tree_digest DIR: "COUNT SHA1" over every session file's name, content
# hash and mtime ns.
tree_digest() { python3 -c "$_FAULT_TREE_PY" digest "$1"; }

# tree_count DIR: number of session-named entries in DIR.
tree_count() { python3 -c "$_FAULT_TREE_PY" count "$1"; }

# nodes_equal I J: node I's and node J's session dirs are equal (tree_equal).
nodes_equal() { tree_equal "$(node_sessions "$1")" "$(node_sessions "$2")"; }

# note_diff I J: diagnostics (it_note) of how node J's dir differs from node I's.
note_diff() {
	local line
	while IFS= read -r line; do
		it_note "n$2 vs n$1: $line"
	done < <(tree_diff "$(node_sessions "$1")" "$(node_sessions "$2")")
}

# check_converged DESC TIMEOUT I J...: wait (bounded) until node J's session
# dir equals node I's for every J; one ok/not ok line, and on failure the
# differences as diagnostics.
check_converged() {
	local desc=$1 timeout=$2 i=$3 j
	shift 3
	if wait_until "$timeout" _fault_all_equal "$i" "$@"; then
		ok "$desc"
		return 0
	fi
	fail "$desc"
	for j in "$@"; do note_diff "$i" "$j"; done
	return 1
}

_fault_all_equal() {
	local i=$1 j
	shift
	for j in "$@"; do nodes_equal "$i" "$j" || return 1; done
}

# gone_on SID I...: SID's file exists on none of the nodes I...
gone_on() {
	local sid=$1 i
	shift
	for i in "$@"; do
		[[ -e $(node_sess_file "$i" "$sid") ]] && return 1
	done
	return 0
}

# ---------------------------------------------------------------- state journal

# journal_kind I SID: kind (0 file, 1 destroy, 2 expire) of the last record
# for sess_SID in node I's state journal; empty if there is none. The mark
# of a tombstone for a name never seen (+16, lib/state.h) is left out.
journal_kind() {
	awk -v n="sess_$2" '$1 == "T" && $6 == n { k = $2 % 16 } $1 == "D" && $2 == n { k = "" } END { print k }' \
		"$(node_state "$1")/journal" 2>/dev/null
}

# journal_is I SID KIND: the last journal record for sess_SID has KIND.
journal_is() { [[ $(journal_kind "$1" "$2") == "$3" ]]; }

# ---------------------------------------------------------------- logs

# log_mark I: the current length of node I's daemon.log in bytes; pass it to
# log_since to look only at what was logged after this point.
log_mark() { stat -c %s -- "$(node_log "$1")" 2>/dev/null || echo 0; }

# log_since I MARK: node I's daemon.log from byte MARK on.
log_since() { tail -c "+$(($2 + 1))" -- "$(node_log "$1")" 2>/dev/null; }

# log_has_since I MARK ERE: a line logged since MARK matches ERE. (Not
# grep -q: it would exit at the first match, tail would die of SIGPIPE, and
# under pipefail a match would look like a failure.)
log_has_since() { log_since "$1" "$2" | grep -E -- "$3" >/dev/null; }

# log_count_since I MARK ERE: how many lines logged since MARK match ERE.
log_count_since() {
	local n
	n=$(log_since "$1" "$2" | grep -Ec -- "$3")
	echo "${n:-0}"
}

# ---------------------------------------------------------------- PHP-like writers

# fault_phpish: write $T/phpish.py, a Python module that writes session files
# exactly the way PHP's files handler does (docs/DESIGN.md "PHP's files handler"), for
# drivers that need more requests per second than php-cli can start:
#   write(path, data, mtime_ns=None)  open O_CREAT|O_RDWR|O_NOFOLLOW 0600,
#                                     flock LOCK_EX, ftruncate, write, close
#   destroy(path)                     unlink (session_destroy)
# Import it with PYTHONPATH=$T. Returns 0.
fault_phpish() {
	[[ -f $T/phpish.py ]] && return 0
	cat >"$T/phpish.py" <<-'EOF'
		"""PHP's files session handler, as tests/integration/lib_faults.sh describes."""
		import fcntl, os

		def write(path, data, mtime_ns=None):
		    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
		    try:
		        fcntl.flock(fd, fcntl.LOCK_EX)
		        os.ftruncate(fd, 0)
		        view = memoryview(data)
		        while view:
		            view = view[os.pwrite(fd, view, len(data) - len(view)):]
		        if mtime_ns is not None:
		            os.utime(fd, ns=(mtime_ns, mtime_ns))
		    finally:
		        os.close(fd)   # drops the lock, raises IN_CLOSE_WRITE

		def destroy(path):
		    try:
		        os.unlink(path)
		        return True
		    except FileNotFoundError:
		        return False

		def php_string(key, value):
		    """key|s:LEN:"value"; the way session_encode writes a string."""
		    return b'%s|s:%d:"%s";' % (key.encode(), len(value), value.encode())
	EOF
}
