# shellcheck shell=bash disable=SC2016  # PHP code sits in single quotes on purpose
# sessync integration-test library. Source it from a test script:
#
#   #!/usr/bin/env bash
#   set -u
#   . "$(dirname "$0")/lib.sh"
#   it_init my_test
#   cluster_create 3 && cluster_start || it_abort "cluster did not start"
#   ...
#   it_finish
#
# Every node is a directory $T/nI with its own sshd (127.0.0.1, its own host
# key, its own port), its own client key, known_hosts and sessync.conf; see
# README.md. Everything this file starts is recorded by PID and stopped by PID
# in the EXIT trap (docs/STYLE.md "Tests": servers are stopped by PID, every wait
# has a deadline). Nothing outside $T is written except /run/sshd (sshd's
# privilege-separation directory) and the port-reservation lock in /tmp.
#
# Safe under `set -u`; does not turn on `set -e` (assertions must keep going).

# Repo root from this file's own path, so tests run from any cwd.
IT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IT_LIB_DIR/../.." && pwd)

IT_START_TIMEOUT=${IT_START_TIMEOUT:-5}   # seconds for a server to come up
IT_STOP_TIMEOUT=${IT_STOP_TIMEOUT:-5}     # seconds for SIGTERM before SIGKILL
IT_SSHD=${IT_SSHD:-/usr/sbin/sshd}        # absolute: sshd refuses to re-exec otherwise
IT_PORTS_LOCK=${IT_PORTS_LOCK:-/tmp/sessync-it.ports.lock}

IT_NAME=""
IT_NODES=0
IT_CHECKS=0
IT_FAILS=0
IT_EXTRA_PIDS=()
T=""

# ---------------------------------------------------------------- time, waits

# now_ms: wall-clock milliseconds since the epoch (bash 5: no fork).
now_ms() {
	if [[ -n ${EPOCHREALTIME:-} ]]; then
		local us=${EPOCHREALTIME//[!0-9]/}
		echo $((us / 1000))
	else
		date +%s%3N
	fi
}

# _it_to_ms SECONDS -> milliseconds; accepts "5", "0.5", "2.25".
_it_to_ms() {
	local s=${1%%.*} f=""
	[[ $1 == *.* ]] && f=${1#*.}
	f=${f}000
	echo $((10#${s:-0} * 1000 + 10#${f:0:3}))
}

# wait_until TIMEOUT_S CMD...: run CMD every 20 ms until it succeeds (0) or
# the deadline passes (1). CMD runs at least once.
wait_until() {
	local deadline=$(($(now_ms) + $(_it_to_ms "$1")))
	shift
	while :; do
		"$@" && return 0
		(($(now_ms) >= deadline)) && return 1
		sleep 0.02
	done
}

# mtime_ns FILE: mtime as integer nanoseconds since the epoch (19 digits).
mtime_ns() {
	local t
	t=$(stat -c '%.9Y' -- "$1") || return 1
	echo "${t/./}"
}

# files_equal A B: same bytes and the same mtime to the nanosecond.
files_equal() {
	[[ -f $1 && -f $2 ]] || return 1
	cmp -s -- "$1" "$2" || return 1
	[[ $(mtime_ns "$1") == "$(mtime_ns "$2")" ]]
}

# ---------------------------------------------------------------- assertions

ok() {
	IT_CHECKS=$((IT_CHECKS + 1))
	echo "ok $IT_CHECKS - $*"
}

fail() {
	IT_CHECKS=$((IT_CHECKS + 1))
	IT_FAILS=$((IT_FAILS + 1))
	echo "not ok $IT_CHECKS - $*"
}

# check DESC CMD...: ok if CMD succeeds, fail otherwise.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else fail "$desc"; fi
}

# not CMD...: invert CMD's status, for check (check "x is gone" not test -e x).
not() { ! "$@"; }

# assert_eq ACTUAL EXPECTED DESC
assert_eq() {
	if [[ $1 == "$2" ]]; then
		ok "$3"
	else
		fail "$3"
		printf '#   got:      %q\n#   expected: %q\n' "$1" "$2"
	fi
}

# assert_contains HAYSTACK NEEDLE DESC
assert_contains() {
	if [[ $1 == *"$2"* ]]; then
		ok "$3"
	else
		fail "$3"
		printf '#   %q does not contain %q\n' "$1" "$2"
	fi
}

# it_note TEXT: a diagnostic line that is not a check.
it_note() { echo "# $*"; }

# it_abort MSG: fail and exit now (cleanup runs from the EXIT trap).
it_abort() {
	fail "$*"
	exit 1
}

# it_finish: stop every daemon, check that no log of the test holds a full
# session name (it_check_logs), print the tally and exit 0 if every check
# passed, 1 otherwise.
it_finish() {
	local i
	# Stopped first, so what a daemon logs on its way out is checked too.
	for ((i = 1; i <= IT_NODES; i++)); do daemon_stop "$i" >/dev/null 2>&1; done
	it_check_logs
	if ((IT_FAILS)); then
		echo "# $IT_NAME: $IT_FAILS of $IT_CHECKS checks failed"
		exit 1
	fi
	echo "# $IT_NAME: all $IT_CHECKS checks passed"
	exit 0
}

# it_require_daemon: exit 77 (skip, automake convention) if $SESSYNCD is not built.
it_require_daemon() {
	if [[ ! -x $SESSYNCD ]]; then
		echo "# SKIP $IT_NAME: $SESSYNCD not built (run make)"
		IT_CHECKS=0 IT_FAILS=0
		exit 77
	fi
}

# ---------------------------------------------------------------- session tags, ids in logs

# sess_tag NAME: the tag sessyncd's logs, --status and metrics use for the
# session file NAME (docs/DESIGN.md "Session ids in logs"): "#" and the first
# 8 hex digits of the xxh3-64 of the name, which is what
# `printf %s NAME | xxhsum -H3` prints (Debian package xxhash). Without a
# working xxhsum it prints "#no-xxhsum", which matches no log line, and
# returns 1; call it_require_tags first.
sess_tag() {
	local out
	if out=$(printf %s "$1" | xxhsum -H3 2>/dev/null) && [[ $out =~ ([0-9a-f]{16}) ]]; then
		echo "#${BASH_REMATCH[1]:0:8}"
		return 0
	fi
	echo "#no-xxhsum"
	return 1
}

# sid_tag SID: the tag of PHP's file sess_SID.
sid_tag() { sess_tag "sess_$1"; }

# it_require_tags: abort unless sess_tag computes the daemon's tags (the
# value pinned in tests/test_sess.c "tag_matches_xxhsum_h3").
it_require_tags() {
	[[ $(sess_tag sess_abc) == "#a00fe318" ]] ||
		it_abort "xxhsum -H3 (package xxhash, tests/deps) must be installed to compute session tags"
}

# Session ids are bearer tokens: no output of sessyncd may hold a full
# session file name, only its tag. it_check_logs greps, once every daemon
# has stopped, every node's daemon.log and every *.log and *.err file
# directly in $T or in $T/nI (the place for the output of any other
# sessyncd run of a test), except the web tier's web.log and haproxy.log,
# for the session prefix followed by an id character. it_finish runs it as
# a check; it_cleanup runs it for a test that never reached it_finish.
IT_ID_RE=${IT_ID_RE:-'sess_[A-Za-z0-9,-]'}
IT_LOGS_CHECKED=0

# _it_sessyncd_outputs: the files it_check_logs reads, one a line.
_it_sessyncd_outputs() {
	local f
	for f in "$T"/*.log "$T"/*.err "$T"/n*/*.log "$T"/n*/*.err; do
		[[ -f $f ]] || continue
		case ${f##*/} in web.log | haproxy.log) continue ;; esac
		echo "$f"
	done
}

it_check_logs() {
	local -a files
	local hits rc=0 what="no log of sessyncd holds a full session name (only tags)"
	IT_LOGS_CHECKED=1
	mapfile -t files < <(_it_sessyncd_outputs)
	if ((${#files[@]} == 0)); then
		ok "$what (no sessyncd log was written)"
		return 0
	fi
	hits=$(grep -HnE -- "$IT_ID_RE" "${files[@]}") || rc=$?
	if ((rc == 1)); then
		ok "$what: ${#files[@]} file(s)"
		return 0
	fi
	fail "$what"
	if ((rc == 0)); then
		echo "#   $(grep -c '' <<<"$hits") line(s) name a session in full, e.g.:"
		head -n "${IT_LOG_TAIL:-20}" <<<"$hits" | sed "s|^$T/|#   \$T/|"
	else
		echo "#   grep exit $rc: could not read ${files[*]}"
	fi
	return 1
}

# ---------------------------------------------------------------- setup, cleanup

# it_init NAME: temp dir $T, $SESSYNCD, EXIT trap.
it_init() {
	IT_NAME=$1
	T=$(mktemp -d /tmp/sessync-it.XXXXXX) || { echo "mktemp failed" >&2; exit 1; }
	export T
	SESSYNCD=${SESSYNCD:-$REPO/sessyncd}
	[[ $SESSYNCD == /* ]] || SESSYNCD=$PWD/$SESSYNCD   # forced commands run in $HOME
	export SESSYNCD
	trap it_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	echo "# $IT_NAME: T=$T"
}

# _it_pid_ours PID: PID is alive and is ours: its command line mentions $T
# or it is this shell's child (guards against PID reuse before signalling).
_it_pid_ours() {
	local pid=$1 cmd ppid
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ -n $cmd && $cmd == *"$T"* ]] && return 0
	ppid=$(ps -o ppid= -p "$pid" 2>/dev/null) || return 1
	ppid=${ppid//[!0-9]/}
	[[ $ppid == "$$" || $ppid == "$BASHPID" ]]
}

# _it_none_alive PID...: none of the PIDs is alive.
_it_none_alive() {
	local p
	for p in "$@"; do _it_alive "$p" && return 1; done
	return 0
}

# _it_alive PID: exists and is not a zombie.
_it_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $st && $st != Z* ]]
}

# _it_descendants PID: every descendant PID, deepest last (one ps snapshot).
# sshd's per-connection children call setsid(), so process groups do not
# catch them; the parent chain does.
_it_descendants() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ kids[$2] = kids[$2] " " $1 }
		END {
			n = split(kids[root], q, " ")
			for (i = 1; i <= n; i++) {
				print q[i]
				m = split(kids[q[i]], c, " ")
				for (j = 1; j <= m; j++) q[++n] = c[j]
			}
		}'
}

# _it_stop_tree PID [SIG [any]]: SIG (default TERM) to PID and its
# descendants, wait up to IT_STOP_TIMEOUT, then SIGKILL whatever is left.
# Only if PID is ours (see _it_pid_ours), unless the third argument is "any".
# Returns PID's exit status if it is this shell's child (128+N: killed by
# signal N), else 0.
_it_stop_tree() {
	local pid=$1 sig=${2:-TERM} p left rc
	local -a all
	if [[ ${3:-} == any ]]; then
		_it_alive "$pid" || return 0
	else
		_it_pid_ours "$pid" || return 0
	fi
	mapfile -t all < <(_it_descendants "$pid")
	all=("$pid" "${all[@]}")
	kill "-$sig" "${all[@]}" 2>/dev/null
	if ! wait_until "$IT_STOP_TIMEOUT" _it_none_alive "${all[@]}"; then
		left=""
		for p in "${all[@]}"; do _it_alive "$p" && left+=" $p"; done
		echo "# pid$left did not exit on SIG$sig; SIGKILL" >&2
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null
		wait_until 2 _it_none_alive "${all[@]}"
	fi
	wait "$pid" 2>/dev/null   # reap if it is our child
	rc=$?
	((rc == 127)) && rc=0     # not our child: no status to give
	return "$rc"
}

# it_track_pid PID: have it_cleanup stop PID (e.g. a load generator).
it_track_pid() { IT_EXTRA_PIDS+=("$1"); }

# it_mount_tmpfs DIR SIZE: mount a private tmpfs on DIR (root only); cleanup
# unmounts it after every process is stopped. Returns 1 if it cannot mount.
IT_MOUNTS=()
it_mount_tmpfs() {
	mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$1" 2>/dev/null || return 1
	IT_MOUNTS+=("$1")
}

it_cleanup() {
	local rc=$? i p f
	trap - EXIT INT TERM
	((rc == 0 && IT_FAILS > 0)) && rc=1
	if [[ -n $T && -d $T ]]; then
		for p in "${IT_EXTRA_PIDS[@]}"; do
			[[ -n $p ]] && _it_stop_tree "$p" TERM any
		done
		for ((i = 1; i <= IT_NODES; i++)); do
			daemon_stop "$i" >/dev/null 2>&1
		done
		for ((i = 1; i <= IT_NODES; i++)); do
			sshd_stop "$i" >/dev/null 2>&1
		done
		# A test that ended without it_finish (it_abort, exit): its logs
		# are checked all the same.
		if ((!IT_LOGS_CHECKED && rc != 77)); then
			it_check_logs || rc=1
		fi
		if ((rc != 0 && rc != 77)); then
			for ((i = 1; i <= IT_NODES; i++)); do
				for f in "$T/n$i/daemon.log" "$T/n$i/sshd/log"; do
					[[ -s $f ]] || continue
					echo "# ---- tail $f"
					tail -n "${IT_LOG_TAIL:-40}" "$f" | sed 's/^/#   /'
				done
			done
		fi
		for f in "${IT_MOUNTS[@]}"; do
			umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null
		done
		if [[ ${KEEP:-0} == 1 ]]; then
			echo "# KEEP=1: left $T"
		else
			rm -rf -- "$T"
		fi
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- nodes

node_name()     { echo "n$1"; }
node_dir()      { echo "$T/n$1"; }
node_port()     { cat "$T/n$1/port"; }
# node_health_port I: node I's health_listen port (cluster_create with IT_HEALTH=1).
node_health_port() { cat "$T/n$1/health.port"; }
node_conf()     { echo "$T/n$1/sessync.conf"; }
node_sessions() { echo "$T/n$1/sessions"; }
node_state()    { echo "$T/n$1/state"; }
node_sock()     { echo "$T/n$1/sessync.sock"; }
node_log()      { echo "$T/n$1/daemon.log"; }
# node_sess_file I SID: path of PHP's file for SID on node I.
node_sess_file() { echo "$T/n$1/sessions/sess_$2"; }

# it_reserve_ports FILE...: pick one free loopback port per FILE and reserve
# it by writing it there. A reservation is any file named *port directly in
# some /tmp/sessync-it.*/ or in one of its node directories (nI/port,
# nI/health.port, nI/web.port, lb.port); the pick runs under an flock so
# parallel runs never choose the same port. Ports come from below the
# kernel's ephemeral range: an outgoing connection's source port there would
# make a server's bind fail.
it_reserve_ports() {
	local lo=20000 hi=60000 eph_lo fd f p tries
	local -A used=()
	read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph_lo=0
	((eph_lo > lo + 1000)) && hi=$((eph_lo - 1))
	exec {fd}>>"$IT_PORTS_LOCK" || return 1
	if ! flock -w 10 "$fd"; then
		echo "port lock $IT_PORTS_LOCK busy for 10 s" >&2
		exec {fd}>&-
		return 1
	fi
	for p in $(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }') \
		$(cat /tmp/sessync-it.*/*port /tmp/sessync-it.*/n*/*port 2>/dev/null); do
		used[$p]=1
	done
	for f in "$@"; do
		for ((tries = 0; tries < 1000; tries++)); do
			p=$((lo + ${SRANDOM:-$RANDOM$RANDOM} % (hi - lo + 1)))
			[[ -z ${used[$p]:-} ]] && break
		done
		used[$p]=1
		echo "$p" >"$f"
	done
	exec {fd}>&-
}

# _it_pick_ports N: reserve node I's sshd port in $T/nI/port for I = 1..N,
# and with IT_HEALTH=1 its health_listen port in $T/nI/health.port.
_it_pick_ports() {
	local n=$1 i
	local -a files=()
	for ((i = 1; i <= n; i++)); do
		files+=("$T/n$i/port")
		((${IT_HEALTH:-0})) && files+=("$T/n$i/health.port")
	done
	it_reserve_ports "${files[@]}"
}

# cluster_create N: lay out nodes n1..nN under $T (see README.md).
cluster_create() {
	local n=$1 i j user hk ck
	[[ -n $T ]] || { echo "cluster_create: call it_init first" >&2; return 1; }
	((IT_NODES == 0)) || { echo "cluster_create: cluster exists" >&2; return 1; }
	user=$(id -un)
	# sshd (even -t) insists on its privilege-separation directory.
	[[ -d /run/sshd ]] || mkdir -m 0755 /run/sshd || return 1
	for ((i = 1; i <= n; i++)); do
		mkdir -p "$T/n$i/sessions" "$T/n$i/state" "$T/n$i/sshd" || return 1
		chmod 0700 "$T/n$i/sessions"
		ssh-keygen -q -t ed25519 -N '' -C "host-n$i" -f "$T/n$i/sshd/ssh_host_ed25519_key" || return 1
		ssh-keygen -q -t ed25519 -N '' -C "n$i" -f "$T/n$i/id_ed25519" || return 1
	done
	IT_NODES=$n   # from here on, cleanup covers these nodes
	_it_pick_ports "$n" || return 1

	for ((i = 1; i <= n; i++)); do
		local d=$T/n$i port
		port=$(node_port "$i")
		: >"$d/known_hosts"
		: >"$d/sshd/authorized_keys"
		for ((j = 1; j <= n; j++)); do
			((i == j)) && continue
			hk=$(cut -d' ' -f1,2 "$T/n$j/sshd/ssh_host_ed25519_key.pub")
			echo "[127.0.0.1]:$(node_port "$j") $hk" >>"$d/known_hosts"
			ck=$(cut -d' ' -f1,2 "$T/n$j/id_ed25519.pub")
			echo "command=\"$SESSYNCD -c $d/sessync.conf --serve --from n$j\",restrict $ck n$j" \
				>>"$d/sshd/authorized_keys"
		done

		cat >"$d/sshd/sshd_config" <<-EOF
			# private test sshd for node n$i (tests/integration/lib.sh)
			ListenAddress 127.0.0.1
			Port $port
			HostKey $d/sshd/ssh_host_ed25519_key
			PidFile $d/sshd/sshd.pid
			AuthorizedKeysFile $d/sshd/authorized_keys
			AuthorizedPrincipalsFile none
			AuthorizedKeysCommand none
			UsePAM no
			StrictModes no
			PubkeyAuthentication yes
			PasswordAuthentication no
			KbdInteractiveAuthentication no
			HostbasedAuthentication no
			PermitRootLogin prohibit-password
			AllowUsers $user
			# HOME decides which start-up files the forced command's shell reads.
			SetEnv HOME=$d
			PermitUserEnvironment no
			LogLevel VERBOSE
			MaxStartups 100:30:200
			MaxSessions 20
			LoginGraceTime 10
			X11Forwarding no
			AllowTcpForwarding no
			AllowAgentForwarding no
			PermitTunnel no
			PrintMotd no
			PrintLastLog no
			Banner none
			UseDNS no
			# Left out on purpose: without an AcceptEnv line sshd accepts no
			# client variables ("AcceptEnv none" would accept one named "none"),
			# and without a Subsystem line there are none ("Subsystem none" is
			# a syntax error: it needs a command).
		EOF

		cat >"$d/sessync.conf" <<-EOF
			; sessync.conf for node n$i (tests/integration/lib.sh)
			[node]
			name             = n$i
			session_dir      = $d/sessions
			state_dir        = $d/state
			socket           = $d/sessync.sock
			identity         = $d/id_ed25519
			known_hosts      = $d/known_hosts
			log_level        = ${IT_LOG_LEVEL:-debug}
			session_lifetime = ${IT_SESSION_LIFETIME:-24m}
			tombstone_ttl    = ${IT_TOMBSTONE_TTL:-24h}
		EOF
		if [[ -f $d/health.port ]]; then
			echo "health_listen    = 127.0.0.1:$(cat "$d/health.port")" >>"$d/sessync.conf"
		fi
		for ((j = 1; j <= n; j++)); do
			((i == j)) && continue
			printf '\n[peer n%d]\nhost = 127.0.0.1\nport = %s\nuser = %s\n' \
				"$j" "$(node_port "$j")" "$user" >>"$d/sessync.conf"
		done

		if ! "$IT_SSHD" -t -f "$d/sshd/sshd_config"; then
			echo "cluster_create: sshd -t rejected $d/sshd/sshd_config" >&2
			return 1
		fi
	done
}

# ---------------------------------------------------------------- sshd

# _it_wait_start PID CMD...: wait up to IT_START_TIMEOUT for CMD to succeed
# while PID lives; returns 1 at once if PID dies.
_it_wait_start() {
	local pid=$1 deadline=$(($(now_ms) + $(_it_to_ms "$IT_START_TIMEOUT")))
	shift
	while _it_alive "$pid"; do
		"$@" && return 0
		(($(now_ms) >= deadline)) && return 1
		sleep 0.02
	done
	return 1
}

_it_port_listening() {
	[[ -n $(ss -Hltn "sport = :$1") ]]
}

# sshd_start I: start node I's sshd in the foreground mode (-D) as our child;
# wait until its port listens. Returns 1 (with the log tail) if it does not.
sshd_start() {
	local i=$1 d=$T/n$1 pid port
	port=$(node_port "$i")
	if [[ -f $d/sshd/pid ]] && _it_alive "$(cat "$d/sshd/pid")"; then
		echo "sshd_start $i: already running" >&2
		return 1
	fi
	[[ -d /run/sshd ]] || mkdir -m 0755 /run/sshd || return 1
	"$IT_SSHD" -D -f "$d/sshd/sshd_config" -E "$d/sshd/log" </dev/null &
	pid=$!
	echo "$pid" >"$d/sshd/pid"
	if ! _it_wait_start "$pid" _it_port_listening "$port"; then
		echo "sshd_start $i: not listening on 127.0.0.1:$port" >&2
		tail -n 5 "$d/sshd/log" >&2 2>/dev/null
		return 1
	fi
}

# sshd_stop I: stop node I's sshd and every connection it forked.
sshd_stop() {
	local d=$T/n$1 pid
	pid=$(cat "$d/sshd/pid" 2>/dev/null) || return 0
	_it_stop_tree "$pid" TERM
	rm -f "$d/sshd/pid" "$d/sshd/sshd.pid"
}

# ---------------------------------------------------------------- daemon

# daemon_start I [ARGS...]: run "$SESSYNCD -c CONF ARGS" in the background,
# output appended to $T/nI/daemon.log; wait until its socket exists.
daemon_start() {
	local i=$1 d=$T/n$1 pid sock
	shift
	sock=$(node_sock "$i")
	if [[ ! -x $SESSYNCD ]]; then
		echo "daemon_start $i: $SESSYNCD is not executable (run make)" >&2
		return 1
	fi
	if [[ -f $d/daemon.pid ]] && _it_alive "$(cat "$d/daemon.pid")"; then
		echo "daemon_start $i: already running" >&2
		return 1
	fi
	echo "=== it: $(date +%T.%3N) daemon_start n$i $*" >>"$d/daemon.log"
	"$SESSYNCD" -c "$d/sessync.conf" "$@" </dev/null >>"$d/daemon.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/daemon.pid"
	# Answering --status, not just a socket file: after a kill -9 the old
	# socket file is still there.
	if ! _it_wait_start "$pid" "$SESSYNCD" -c "$d/sessync.conf" --status >/dev/null 2>&1; then
		echo "daemon_start $i: no answer on $sock after ${IT_START_TIMEOUT}s" >&2
		tail -n 5 "$d/daemon.log" >&2
		return 1
	fi
}

# daemon_pid I: PID of node I's daemon (empty if none was started).
daemon_pid() { cat "$T/n$1/daemon.pid" 2>/dev/null; }

# daemon_running I: node I's daemon is alive.
daemon_running() {
	local pid
	pid=$(daemon_pid "$1")
	[[ -n $pid ]] && _it_alive "$pid"
}

# daemon_stop I: SIGTERM, wait up to IT_STOP_TIMEOUT, then SIGKILL.
# Returns the daemon's exit status: 0 = it stopped cleanly on SIGTERM
# (docs/DESIGN.md Interface), 137 = it had to be killed.
daemon_stop() {
	local d=$T/n$1 pid rc
	pid=$(cat "$d/daemon.pid" 2>/dev/null) || return 0
	_it_stop_tree "$pid" TERM
	rc=$?
	echo "=== it: $(date +%T.%3N) daemon_stop n$1: exit status $rc" >>"$d/daemon.log"
	rm -f "$d/daemon.pid"
	return "$rc"
}

# daemon_kill9 I: SIGKILL (a crash: the socket file stays behind).
daemon_kill9() {
	local d=$T/n$1 pid
	pid=$(cat "$d/daemon.pid" 2>/dev/null) || return 0
	_it_stop_tree "$pid" KILL 2>/dev/null   # no "Killed" job notice: expected
	echo "=== it: $(date +%T.%3N) daemon_kill9 n$1" >>"$d/daemon.log"
	rm -f "$d/daemon.pid"
}

# sessync_cli I ARGS...: run a CLI command against node I's config,
# e.g. sessync_cli 1 --status --json. Bounded by IT_CLI_TIMEOUT (30 s).
sessync_cli() {
	local i=$1
	shift
	timeout "${IT_CLI_TIMEOUT:-30}" "$SESSYNCD" -c "$T/n$i/sessync.conf" "$@"
}

# health_word I: the line node I's health_listen port answers ("up",
# "down", "drain", ...: the words HAProxy's agent-check reads); empty,
# status 1, if nothing listens or nothing arrives within 2 s.
health_word() {
	local fd w
	exec {fd}<>"/dev/tcp/127.0.0.1/$(node_health_port "$1")" 2>/dev/null || return 1
	read -r -t 2 w <&"$fd"
	exec {fd}>&-
	[[ -n $w ]] || return 1
	echo "$w"
}

# node_conf_set I KEY VALUE: set KEY in the [node] section of node I's
# sessync.conf (replaced if it is there, else added), e.g. ready_timeout.
# Takes effect at the daemon's next start.
node_conf_set() {
	local f
	f=$(node_conf "$1")
	awk -v k="$2" -v v="$3" '
		/^\[/ { if (sec == "node" && !done) { printf "%-16s = %s\n", k, v; done = 1 }
		        sec = ($0 == "[node]") ? "node" : "other" }
		sec == "node" && $1 == k { if (!done) printf "%-16s = %s\n", k, v; done = 1; next }
		{ print }
		END { if (sec == "node" && !done) printf "%-16s = %s\n", k, v }' "$f" >"$f.new" &&
		mv -f -- "$f.new" "$f"
}

# node_wipe I: empty node I's session directory, as a fresh tmpfs is (the
# daemon is expected to be stopped).
node_wipe() { find "$(node_sessions "$1")" -mindepth 1 -delete; }

# node_reboot I: what a reboot leaves for node I's next daemon start: an
# empty session directory (tmpfs) and a kernel boot id that differs from the
# one in state_dir/boot_id (written there as another boot's, since this
# kernel's cannot change).
node_reboot() {
	node_wipe "$1" || return 1
	echo "00000000-0000-4000-8000-000000000000" >"$(node_state "$1")/boot_id"
}

# cluster_start: every sshd, then every daemon.
cluster_start() {
	local i
	for ((i = 1; i <= IT_NODES; i++)); do sshd_start "$i" || return 1; done
	for ((i = 1; i <= IT_NODES; i++)); do daemon_start "$i" || return 1; done
}

# cluster_stop: every daemon (so none logs its peers vanishing), then every
# sshd. Returns 1 if any daemon did not exit 0 on SIGTERM.
cluster_stop() {
	local i rc=0
	for ((i = 1; i <= IT_NODES; i++)); do daemon_stop "$i" || rc=1; done
	for ((i = 1; i <= IT_NODES; i++)); do sshd_stop "$i"; done
	return "$rc"
}

# ---------------------------------------------------------------- php

# PHP's own files handler, no php.ini (-n). gc_probability=0: with -n PHP
# would otherwise run its GC on 1% of requests and unlink any file older than
# 1440 s, which would make tests that age mtimes flaky; use php_gc instead.
IT_PHP_EXTRA=()
_it_php() {
	local i=$1
	shift
	if [[ -z ${IT_PHP_CHECKED:-} ]]; then
		# Debian builds session in statically; elsewhere load it by name.
		# Not "php -m | grep -q": grep -q exits at the first match, php
		# then fails writing the rest (exit 255) and, under pipefail, a
		# built-in session module looked missing about a third of the time.
		local mods
		mods=$(php -n -m 2>/dev/null)
		if ! grep -qix session <<<"$mods"; then
			IT_PHP_EXTRA=(-d extension=session)
		fi
		IT_PHP_CHECKED=1
	fi
	timeout "${IT_PHP_TIMEOUT:-30}" php -n "${IT_PHP_EXTRA[@]}" \
		-d session.save_handler=files \
		-d "session.save_path=$T/n$i/sessions" \
		-d session.use_strict_mode=0 \
		-d session.use_cookies=0 \
		-d session.use_only_cookies=0 \
		-d session.use_trans_sid=0 \
		-d session.cache_limiter= \
		-d session.lazy_write=1 \
		-d session.gc_probability=0 \
		-d "session.gc_maxlifetime=${IT_PHP_LIFETIME:-1440}" \
		-d display_errors=stderr \
		-d error_reporting=-1 \
		"$@"
}

# php_session I SID CODE: one PHP request on node I for session SID:
# session_start(), eval CODE (statements on $_SESSION), session_write_close().
# Whatever CODE echoes goes to stdout. Returns non-zero if PHP failed.
php_session() {
	_it_php "$1" -r '
		session_id($argv[1]);
		if (!session_start()) exit(1);
		eval($argv[2]);
		if (!session_write_close()) exit(1);' -- "$2" "$3"
}

# php_read I SID: print var_export($_SESSION) without changing the file
# (lazy_write: an unchanged session only has its mtime updated).
php_read() {
	php_session "$1" "$2" 'echo var_export($_SESSION, true), "\n";'
}

# php_touch I SID: a request that changes nothing (lazy_write: mtime only).
php_touch() { php_session "$1" "$2" ''; }

# php_destroy I SID: session_start() + session_destroy() (a logout: unlink).
php_destroy() {
	_it_php "$1" -r '
		session_id($argv[1]);
		if (!session_start()) exit(1);
		if (!session_destroy()) exit(1);' -- "$2"
}

# php_gc I SID [MAXLIFETIME_S]: a request for SID (changes nothing) during
# which PHP's GC runs, as it does on 1 in gc_divisor real requests: it unlinks
# every sess_ file on node I whose mtime is older than MAXLIFETIME_S (default
# 1440). Prints how many it removed. GC needs an active session, hence SID.
php_gc() {
	IT_PHP_LIFETIME=${3:-1440} php_session "$1" "$2" \
		'$n = session_gc(); echo $n === false ? "fail" : $n, "\n";'
}
