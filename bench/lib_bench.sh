# shellcheck shell=bash
# Helpers for the comparing benchmarks (bench/drain.sh, bench/steady.sh),
# sourced after tests/integration/lib.sh and it_init.
#
# CPU: every node is a cgroup (v2 if the unified hierarchy is writable, else
# v1 cpuacct) below $BENCH_CG (made by bench/run, or here); whatever a node
# runs goes in (its sshd, whose connections and relays inherit it, its
# daemon, the --full-sync CLI, the competitor's processes), and the figure
# is the growth of the cgroup's CPU time (user + system, every process that
# ever ran there, exited ones included). The load generator and this script
# stay outside.
#
# Bytes on the wire: TCP payload bytes of every established connection to a
# node's sshd port (ss -ti on the client side: bytes_acked + bytes_received),
# i.e. what sshd and the client encrypted, both directions.
#
# Results: "KEY VALUE..." lines appended to $BENCH_RESULTS (bench/run prints
# the table from them).

BENCH_RESULTS=${BENCH_RESULTS:-$T/results}

# bench_result KEY VALUE...: record a figure for the final table.
bench_result() { echo "$*" >>"$BENCH_RESULTS"; }

# ---------------------------------------------------------------- cgroups

_cg_kind=""
_cg_root=""
cg_init() {
	local base
	if [[ -n ${BENCH_CG:-} && -d $BENCH_CG ]]; then
		_cg_root=$BENCH_CG/$(basename "$T")
	elif [[ -w /sys/fs/cgroup/unified/cgroup.procs || -f /sys/fs/cgroup/cgroup.controllers ]]; then
		base=/sys/fs/cgroup/unified
		[[ -f /sys/fs/cgroup/cgroup.controllers ]] && base=/sys/fs/cgroup
		_cg_root=$base/sessync-bench.$(basename "$T")
	elif [[ -d /sys/fs/cgroup/cpuacct ]]; then
		_cg_root=/sys/fs/cgroup/cpuacct/sessync-bench.$(basename "$T")
	fi
	if [[ -z $_cg_root ]] || ! mkdir -p "$_cg_root" 2>/dev/null; then
		_cg_root=""
		return 1
	fi
	if [[ -f $_cg_root/cpu.stat ]]; then _cg_kind=v2; else _cg_kind=v1; fi
}

# cg_dir I: node I's cgroup directory (made on first use).
cg_dir() {
	[[ -n $_cg_root ]] || return 1
	mkdir -p "$_cg_root/n$1" 2>/dev/null || return 1
	echo "$_cg_root/n$1"
}

# cg_add I PID...: move PIDs into node I's cgroup (children forked later follow).
cg_add() {
	local d p i=$1
	shift
	d=$(cg_dir "$i") || return 1
	for p in "$@"; do echo "$p" >"$d/cgroup.procs" 2>/dev/null; done
}

# cg_run I CMD...: run CMD inside node I's cgroup.
cg_run() {
	local d i=$1
	shift
	d=$(cg_dir "$i") || { "$@"; return; }
	bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$d" "$@"
}

# cg_usec I: CPU microseconds used in node I's cgroup so far.
cg_usec() {
	local d
	d=$(cg_dir "$1") || { echo 0; return; }
	if [[ $_cg_kind == v2 ]]; then
		awk '$1 == "usage_usec" {print $2}' "$d/cpu.stat"
	else
		echo $(($(cat "$d/cpuacct.usage") / 1000))
	fi
}

# cg_total_usec: the sum over every node.
cg_total_usec() {
	local i t=0
	for ((i = 1; i <= IT_NODES; i++)); do t=$((t + $(cg_usec "$i"))); done
	echo "$t"
}

# cg_cleanup: remove the (by then empty) cgroups.
cg_cleanup() {
	[[ -n $_cg_root && -d $_cg_root ]] || return 0
	local d
	for d in "$_cg_root"/n*; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
	rmdir "$_cg_root" 2>/dev/null
	return 0
}

# sshds_start_cg, daemon_start_cg I: sshd_start / daemon_start with the
# process in its node's cgroup.
sshds_start_cg() {
	local i
	for ((i = 1; i <= IT_NODES; i++)); do
		sshd_start "$i" || return 1
		cg_add "$i" "$(cat "$T/n$i/sshd/pid")"
	done
}
daemon_start_cg() {
	daemon_start "$1" || return 1
	cg_add "$1" "$(daemon_pid "$1")"
}

# ---------------------------------------------------------------- the wire

# wire_bytes [PORT...]: TCP payload bytes so far, both directions, of every
# established connection whose server side is one of PORTs (default: every
# node's sshd port), counted at the client's socket.
wire_bytes() {
	local -a ports=("$@")
	local i
	if ((${#ports[@]} == 0)); then
		for ((i = 1; i <= IT_NODES; i++)); do ports+=("$(node_port "$i")"); done
	fi
	ss -Htin state established | awk -v ports=" ${ports[*]} " '
		/^[0-9]/ || /^ *[0-9]+ +[0-9]+ +[0-9]/ {
			n = split($NF, a, ":"); want = index(ports, " " a[n] " ") > 0; next
		}
		want {
			for (f = 1; f <= NF; f++) {
				if ($f ~ /^bytes_acked:/) { split($f, b, ":"); t += b[2] }
				if ($f ~ /^bytes_received:/) { split($f, b, ":"); t += b[2] }
			}
			want = 0
		}
		END { printf "%d\n", t }'
}

# ---------------------------------------------------------------- rsync over the same sshd

# bench_rsync_key: a second client key for n1, in every other node's
# authorized_keys without command= (restrict only), so rsync logs in to the
# same sshd as sessync, with the same host keys.
bench_rsync_key() {
	local i
	ssh-keygen -q -t ed25519 -N '' -C rsync-bench -f "$T/rsync_key" || return 1
	for ((i = 2; i <= IT_NODES; i++)); do
		echo "restrict $(cut -d' ' -f1,2 "$T/rsync_key.pub") rsync-bench" >>"$T/n$i/sshd/authorized_keys"
	done
}

# bench_ssh_cmd PORT [CONTROL_PATH]: the ssh command rsync -e gets.
bench_ssh_cmd() {
	local s="ssh -p $1 -i $T/rsync_key -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$T/n1/known_hosts -o StrictHostKeyChecking=yes -o LogLevel=ERROR"
	[[ -n ${2:-} ]] && s+=" -o ControlPath=$2 -o ControlMaster=no"
	echo "$s"
}

# bench_known_port PORT NODE: n1's known_hosts also vouches for NODE's host
# key at PORT (a proxy in front of NODE's sshd).
bench_known_port() {
	echo "[127.0.0.1]:$1 $(cut -d' ' -f1,2 "$T/n$2/sshd/ssh_host_ed25519_key.pub")" >>"$T/n1/known_hosts"
}

# bench_ensure_tools: install what only the benchmark needs (rsync,
# inotify-tools, lsyncd), the way tests/deps installs.
bench_ensure_tools() {
	local -a want=()
	command -v rsync >/dev/null || want+=(rsync)
	command -v inotifywait >/dev/null || want+=(inotify-tools)
	command -v lsyncd >/dev/null || want+=(lsyncd)
	((${#want[@]})) || return 0
	echo "   (installing ${want[*]} for the comparison)"
	local sudo=""
	[[ $(id -u) -eq 0 ]] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null; }
}

# nfiles DIR: how many sess_ files DIR holds.
nfiles() { find "$1" -maxdepth 1 -name 'sess_*' -type f | wc -l; }

# write_1k DIR N: N PHP-like sessions of ~1 KB (PHP's serialize format,
# 26-character ids), written the way PHP's files handler writes; prints
# "COUNT SECONDS".
write_1k() {
	python3 - "$1" "$2" <<'PY'
import fcntl, hashlib, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
alpha = "0123456789abcdefghijklmnopqrstuv"
t = time.time()
for i in range(n):
    h = hashlib.blake2b(b"%d" % i, digest_size=32).digest()
    sid = "".join(alpha[b & 31] for b in h[:26])
    hx = h.hex()
    user = "user%06d" % i
    s = ('user_id|i:%d;username|s:%d:"%s";email|s:%d:"%s@example.com";'
         'roles|a:2:{i:0;s:4:"user";i:1;s:6:"editor";}csrf_token|s:64:"%s";'
         'login_time|i:%d;last_seen|i:%d;'
         % (i, len(user), user, len(user) + 12, user, hx, 1700000000 + i, 1700000000 + 2 * i))
    s += 'cart|a:2:{i:0;a:3:{s:3:"sku";s:8:"SKU%05d";s:3:"qty";i:%d;s:5:"price";d:%d.99;}' % (i % 99991, i % 7 + 1, i % 500)
    s += 'i:1;a:3:{s:3:"sku";s:8:"SKU%05d";s:3:"qty";i:1;s:5:"price";d:19.99;}}' % ((i * 7) % 99991)
    pad = (hx * 16)[: max(0, 1024 - len(s) - 20)]
    s += 'flash|s:%d:"%s";' % (len(pad), pad)
    fd = os.open("%s/sess_%s" % (d, sid), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, s.encode(), 0)
    os.close(fd)
print("%d %.2f" % (n, time.time() - t))
PY
}

# same_dirs A B: "missing differing" of A's sess_ files in B (bytes only).
same_dirs() {
	python3 - "$1" "$2" <<'PY'
import os, sys
a, b = sys.argv[1], sys.argv[2]
missing = differ = 0
for e in os.scandir(a):
    if not e.name.startswith("sess_"):
        continue
    try:
        with open(os.path.join(b, e.name), "rb") as fb, open(e.path, "rb") as fa:
            differ += fa.read() != fb.read()
    except FileNotFoundError:
        missing += 1
print(missing, differ)
PY
}

# bench_exit: the EXIT trap of a bench script (set after it_init): lib.sh's
# cleanup (in a subshell: it ends with exit), then the cgroups, which can
# only go once every process in them is gone.
bench_exit() {
	local rc=$?
	( (exit "$rc"); it_cleanup )
	rc=$?
	cg_cleanup
	exit "$rc"
}

# ---------------------------------------------------------------- profiles

# BENCH_PROFILE=perf: prof_start NAME records every CPU with call graphs
# (BENCH_PERF_CALLGRAPH=dwarf for libraries without frame pointers) and
# each sample's cgroup; prof_stop NAME writes, for this run's node cgroups
# only (the machine may be shared), the share of samples by node and
# process, by process and library, and by process and symbol, as per cent
# of this run's samples: $BENCH_OUT/perf.NAME.txt.
# BENCH_PROFILE=strace: prof_start NAME PID... runs strace -c -f on each
# PID (one summary per PID: $BENCH_OUT/strace.NAME.PID).
_prof_pids=()
prof_start() {
	local name=$1 p
	shift
	case ${BENCH_PROFILE:-} in
	perf)
		perf record -a --call-graph "${BENCH_PERF_CALLGRAPH:-fp}" --all-cgroups -F 499 -o "$OUT/perf.$name" >/dev/null 2>&1 &
		_prof_pids+=($!)
		;;
	strace)
		for p in "$@"; do
			strace -c -f -o "$OUT/strace.$name.$p.$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $NF}' | tr -c 'a-zA-Z0-9\n' _ | cut -c1-20)" -p "$p" 2>/dev/null &
			_prof_pids+=($!)
		done
		;;
	*) return 0 ;;
	esac
	sleep 0.5
}
prof_stop() {
	local name=$1 p cg
	for p in "${_prof_pids[@]}"; do kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	_prof_pids=()
	[[ ${BENCH_PROFILE:-} == perf && -f $OUT/perf.$name ]] || return 0
	cg=${_cg_root##*/}
	{
		for sort in cgroup,comm cgroup,comm,dso cgroup,comm,sym; do
			echo "-- by $sort, per cent of this run's samples"
			perf report -i "$OUT/perf.$name" --stdio --no-children --sort "$sort" -g none 2>/dev/null |
				grep -F "$cg" | sed "s|/[^ ]*$cg/||" |
				awk '{ p = $1; sub("%", "", p); $1 = ""; v[NR] = p; l[NR] = $0; t += p }
				     END { for (i = 1; i <= NR && i <= 60; i++) printf "%6.2f%% %s\n", 100 * v[i] / t, l[i] }'
		done
	} >"$OUT/perf.$name.txt"
	echo "   profile: $OUT/perf.$name.txt" >&2
}
