#!/usr/bin/env bash
# shellcheck disable=SC2317  # helpers are called through check / wait_until
# Readiness (docs/DESIGN.md "Readiness"): a node that comes back serves no
# user before it holds what its peers held, so nobody reads an old session
# there and no write there brings a logout back.
#
# Three nodes behind HAProxy (lib_web.sh: php -S with tests/app/index.php per
# node, cookie stickiness, and an agent-check on each sessyncd's
# health_listen port). ready_load.py logs USERS users in on n2 and n3 and
# keeps a load of RATE PHP requests per second going there the whole time
# (counter + 1, logouts, new logins), keeping the ground truth per user.
# Then n1 goes away and comes back, four ways:
#   a  stop:   web server and sessyncd stopped cleanly; back in the order
#              the README gives: sessyncd, `--wait-ready`, the web server
#   b  reboot: everything stopped, the session dir wiped (tmpfs) and the
#              kernel's boot id different from state_dir's; back the same way
#   b2 wiped:  as a, with the session dir emptied while sessyncd was down
#              (the "wiped" guard alone, no new boot)
#   c  kill9:  sessyncd killed with SIGKILL and started again 2 s later
#              (RestartSec= of conf/sessyncd.service); the web server keeps
#              running, as php-fpm does when sessyncd dies (the drop-ins in
#              conf/systemd order it after sessyncd but do not bind it):
#              only the agent-check keeps users off n1, from its first
#              "down" to "up". HAProxy keeps n1 in rotation while the daemon
#              is dead (an agent it cannot reach is ignored), so no user is
#              sent to n1 then: sticky users of n2 and n3 would not go there.
# While n1 is down (2 s) it misses hundreds of updates and dozens of
# logouts. Then up to 40 users written meanwhile and 20 logged out
# meanwhile start clicking through HAProxy with the cookie SRV=n1 (pinned to
# n1), every 0.5 s; HAProxy sends them to n2 until n1 is back in rotation.
# The first request of each that n1 answers is judged against the truth as
# it was when it was sent:
#   stale read   its counter is older than the newest written before, or a
#                logged-in user is not logged in there
#   resurrected  a logged-out user is logged in there
# After the run, with every node converged:
#   lost         a live user's session, on any node, does not hold the last
#                counter written (also counted by the load whenever a request
#                on n2 or n3 reads less than what was written before)
#   resurrected  a logged-out user's session holds a user on some node (a
#                write through n1 that recreated it); an empty session that
#                PHP made for a request without a session does not count
# All must be 0. Then, with n3 unreachable and ready_timeout = 3s on n1:
# `--wait-ready 1` exits 1, the health port says "down" and HAProxy takes
# n1 (whose web server runs) out of rotation; `--wait-ready 10` exits 0
# after ~3 s with n3 not waited for, the port says "up", n1 is back in.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_web.sh"
. "$(dirname "$0")/lib_faults.sh"
export IT_LOG_LEVEL=${IT_LOG_LEVEL:-info}

it_init t_ready
it_require_daemon

RATE=${IT_READY_RATE:-300}     # background requests per second on n2 and n3
USERS=${IT_READY_USERS:-300}   # logged in at the start
DOWN_S=2                       # how long n1 is away
PHASES=${IT_READY_PHASES:-"a b b2 c"}
CTL=$T/ctl

cluster_create 3 && cluster_start || it_abort "cluster did not start"
for i in 1 2 3; do web_start "$i" || it_abort "php -S on n$i did not start"; done
lb_start 3 || it_abort "haproxy did not start"

node_ready() { [[ $(node_stat "$1" ready) == True ]]; }
for i in 1 2 3; do check "n$i is ready" wait_until 10 node_ready "$i"; done
for i in 1 2 3; do check "HAProxy has n$i in rotation" wait_until 5 lb_up "$i"; done
check "n1's health port says up" test "$(health_word 1)" = up

mkdir -p "$CTL"
python3 "$(dirname "$0")/ready_load.py" "$T" "$(lb_port)" "$RATE" "$USERS" 2>>"$T/load.err" &
load_pid=$!
it_track_pid "$load_pid"
check "the load logs $USERS users in on n2 and n3" wait_until 20 test -e "$CTL/ready"
check_converged "their sessions reach every node" 20 2 1 3
touch "$CTL/go"
t_load=$(now_ms)

# ready_ms I MARK: the daemon's own figure for its last start since log MARK
# ("ready: ... N ms after start").
ready_ms() {
	log_since "$1" "$2" | sed -n 's/.*ready: caught up with .*, \([0-9]*\) ms after start.*/\1/p' | tail -n 1
}
# to_receive I MARK: what node I's comparisons found to receive, per peer
# ("peer "n2": compared; N to receive"), as "N from n2, M from n3".
to_receive() {
	log_since "$1" "$2" | sed -n 's/.*peer "\([^"]*\)": compared; \([0-9]*\) to receive.*/\2 from \1/p' |
		paste -sd, - | sed 's/,/, /g'
}
n1_out_or_ready() { [[ $(lb_state 1) == DOWN* || $(health_word 1) == up ]]; }

# run_phase P HOW: n1 goes away HOW (stop, reboot, wiped, kill9) for DOWN_S
# seconds while the load goes on, and comes back; phase P's probe users judge
# its first answers.
run_phase() {
	local p=$1 how=$2 mark t0 t_ready rc ms first k="" out_ms=0
	local -a counts
	mark=$(log_mark 1)
	case $how in
	kill9)
		daemon_kill9 1
		;;
	*)
		web_stop 1
		check "($p) n1's daemon stops cleanly" daemon_stop 1
		[[ $how == reboot ]] && sshd_stop 1
		;;
	esac
	touch "$CTL/down-$p"
	sleep "$DOWN_S"
	[[ $how == kill9 ]] && it_note "($p) HAProxy's view of n1 while its daemon is dead: $(lb_state 1)"
	case $how in
	reboot) node_reboot 1 ;;
	wiped) node_wipe 1 ;;
	esac
	touch "$CTL/freeze-$p"
	check "($p) the probe users are picked" wait_until 5 test -e "$CTL/frozen-$p"
	sleep 0.3   # their last writes on n2 or n3 reach the other one
	[[ $how != kill9 ]] && touch "$CTL/probe-$p"   # clicking; HAProxy sends them to n2
	[[ $how == reboot ]] && { sshd_start 1 || fail "($p) n1's sshd starts"; }
	t0=$(now_ms)
	check "($p) n1's daemon starts" daemon_start 1
	if [[ $how == kill9 ]]; then
		# The web server never stopped: the first agent-check after the
		# start says "down" (unless n1 is ready by then).
		check "($p) HAProxy takes n1 out, or n1 is ready" wait_until 5 n1_out_or_ready
		k=$(lb_state 1)
		out_ms=$(($(now_ms) - t0))
		touch "$CTL/probe-$p"
	fi
	sessync_cli 1 --wait-ready 20 >/dev/null 2>>"$T/wait-ready.err"
	rc=$?
	t_ready=$(now_ms)
	assert_eq "$rc" 0 "($p) --wait-ready exits 0"
	if [[ $how != kill9 ]]; then
		web_start 1 || fail "($p) n1's web server starts"
	fi
	check "($p) every probe user has had an answer from n1" wait_until 30 test -e "$CTL/result-$p.json"
	ms=$(ready_ms 1 "$mark")
	if [[ $how == kill9 && $k == DOWN* ]]; then
		it_note "measured: ($p $how) HAProxy kept n1 in rotation for ~$out_ms ms after its daemon started" \
			"(ready after ${ms:-?} ms), until the agent's first \"down\" took it out"
	elif [[ $how == kill9 ]]; then
		it_note "measured: ($p $how) n1 was ready (${ms:-?} ms) before HAProxy's agent-check saw it \"down\"" \
			"(HAProxy kept it in rotation throughout)"
	fi
	case $how in
	reboot) check "($p) n1 took it for a new boot" log_has_since 1 "$mark" 'first start since boot' ;;
	wiped) check "($p) n1 took its session dir for wiped" log_has_since 1 "$mark" 'taken as wiped' ;;
	esac
	mapfile -t counts < <(python3 - "$CTL/result-$p.json" "$CTL/frozen-$p" <<-'EOF'
		import json, sys
		r, f = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
		for k in ("missed_updates", "missed_logouts"):
		    print(f[k])
		for k in ("live", "out", "ok", "stale", "resurrected", "unexpected", "elsewhere", "elsewhere_stale",
		          "elsewhere_resurrected", "errors", "timeouts", "first_n1_sent_ms"):
		    print(r[k] if r[k] is not None else -1)
		print(" | ".join(r["notes"]) or "-")
	EOF
	)
	first=${counts[13]}
	it_note "measured: ($p $how) n1 had ${counts[0]} updated and ${counts[1]} logged-out sessions to catch up" \
		"(to receive: $(to_receive 1 "$mark")); ready ${ms:-?} ms after its sessyncd started" \
		"(--wait-ready returned after $((t_ready - t0)) ms); first request served by n1 sent" \
		"$((first - t0)) ms after the start"
	it_note "measured: ($p $how) first request on n1 of ${counts[2]} users and ${counts[3]} logged out:" \
		"${counts[5]} stale reads, ${counts[6]} resurrected (before: ${counts[8]} requests sent to n2/n3," \
		"${counts[9]} stale, ${counts[10]} resurrected)"
	[[ ${counts[14]} != - ]] && it_note "($p) ${counts[14]}"
	assert_eq "${counts[5]}" 0 "($p) no stale read on n1"
	assert_eq "${counts[6]}" 0 "($p) no logged-out user logged in on n1"
	assert_eq "$((counts[2] + counts[3]))" "${counts[4]}" "($p) every probe user's first answer from n1 is right"
	assert_eq "${counts[12]}" 0 "($p) no probe user left without an answer from n1"
	assert_eq "$((counts[9] + counts[10] + counts[7]))" 0 "($p) nothing stale or unexpected on n2/n3 either"
	if ((first > 0 && ${ms:-0} > 0)); then
		# HAProxy sent n1 its first user after the daemon said it was ready
		# (the log's figure counts from the daemon's own start, a few ms
		# after t0): the agent-check or the web server's late start did it.
		if ((first - t0 >= ms)); then
			ok "($p) n1's first user came after it was ready"
		else
			fail "($p) n1's first user came $((first - t0)) ms after the start, before ready ($ms ms)"
		fi
	fi
	for k in 2 3; do
		check "($p) n1 -> n$k connected" wait_until 10 peer_connected 1 "n$k"
	done
}

for p in $PHASES; do
	case $p in
	a) run_phase a stop ;;
	b) run_phase b reboot ;;
	b2) run_phase b2 wiped ;;
	c) run_phase c kill9 ;;
	*) it_abort "unknown phase $p" ;;
	esac
done

# ---------------------------------------------------------------- after the run
touch "$CTL/stop"
check "the load stops" wait_until 30 not _it_alive "$load_pid"
wait "$load_pid"
assert_eq "$?" 0 "the load exits 0"
it_note "load: $(python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print("%(ops)d requests in %(secs).1f s: %(updates)d updates, %(logouts)d logouts, %(logins)d logins; %(users)d users" % dict(s, secs=float(sys.argv[2]) / 1000))' "$T/stats.json" "$(($(now_ms) - t_load))")"
check_converged "n1, n2 and n3 converge" 20 1 2 3
read -r lost resurrected live out < <(python3 - "$T/truth.json" "$T/stats.json" "$(node_sessions 1)" "$(node_sessions 2)" "$(node_sessions 3)" <<'EOF'
import json, os, re, sys
truth, stats, dirs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3:]
lost, resurrected, live, out = stats["lost"], 0, 0, 0
for note in stats["lost_notes"]:
    print("# lost (seen by the load): " + note, file=sys.stderr)
for u in truth:
    if u["lost"]:
        continue
    datas = []
    for d in dirs:
        try:
            datas.append(open(os.path.join(d, "sess_" + u["sid"]), "rb").read())
        except FileNotFoundError:
            datas.append(None)
    if u["out"]:
        out += 1
        where = [d for d, b in zip(dirs, datas) if b and b"user|" in b]
        if where:
            resurrected += 1
            print("# resurrected: %s on %s" % (u["name"], " ".join(where)), file=sys.stderr)
        continue
    live += 1
    want = b"counter|i:%d;" % u["counter"]
    bad = [d for d, b in zip(dirs, datas) if b is None or want not in b]
    if bad:
        lost += 1
        print("# lost update: %s (counter %d) on %s" % (u["name"], u["counter"], " ".join(bad)), file=sys.stderr)
print(lost, resurrected, live, out)
EOF
)
it_note "measured: after the run, $live live and $out logged-out users: $lost lost updates, $resurrected logouts undone"
assert_eq "$lost" 0 "no lost update"
assert_eq "$resurrected" 0 "no logged-out session came back"

# ---------------------------------------------------------------- a peer that cannot be reached
# n3 gone for good; n1 restarts with ready_timeout = 3s and its web server
# running: not ready for 3 s, so the agent keeps it out of rotation.
daemon_stop 3 >/dev/null
sshd_stop 3
daemon_stop 1 >/dev/null
node_conf_set 1 ready_timeout 3s
mark=$(log_mark 1)
t0=$(now_ms)
check "n1's daemon starts with n3 unreachable" daemon_start 1
check "n1's health port says down" test "$(health_word 1)" = down
sessync_cli 1 --wait-ready 1 >/dev/null 2>"$T/wait-ready1.err"
assert_eq "$?" 1 "--wait-ready 1 exits 1 (ready_timeout 3 s is longer)"
assert_contains "$(cat "$T/wait-ready1.err")" "n3 not compared yet" "--wait-ready says what it waits for"
n1_out() { [[ $(lb_state 1) == DOWN* ]]; }
check "HAProxy takes n1 out (agent: down)" wait_until 2 n1_out
assert_contains "$(curl -sS --max-time 5 -b SRV=n1 "http://127.0.0.1:$(lb_port)/?action=health")" "node=n2" \
	"a request pinned to n1 goes to n2"
sessync_cli 1 --wait-ready 10 >"$T/wait-ready10.out" 2>"$T/wait-ready10.err"
rc=$?
ms=$(($(now_ms) - t0))
assert_eq "$rc" 0 "--wait-ready 10 exits 0 once ready_timeout has passed"
if ((ms >= 2900 && ms < 8000)); then ok "ready after ready_timeout ($ms ms)"; else fail "ready after ready_timeout (took $ms ms)"; fi
it_note "measured: with a peer unreachable and ready_timeout = 3s, ready $(ready_ms 1 "$mark") ms after start"
assert_contains "$(status_json 1)" '"catchup": "not waited for' "n3 is not waited for (status JSON)"
check "n3 is logged as not waited for" log_has_since 1 "$mark" 'peer "n3": not reached .*not waited for'
check "n1's health port says up" test "$(health_word 1)" = up
check "HAProxy puts n1 back" wait_until 2 lb_up 1

it_finish
