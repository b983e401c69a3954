#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers are called through check / wait_until
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
#              conf/systemd order it after sessyncd but do not bind it).
#              HAProxy keeps n1 in rotation while the daemon is dead (an
#              agent it cannot reach is ignored), so n1's own users stay
#              there: N1_USERS (30) users logged in on n1 through HAProxy
#              keep clicking there every 0.4 s (ready_load.py, with the
#              cookies HAProxy and PHP set), and 8 of them log out there,
#              while no daemon can replicate it. Those changes exist on n1
#              only when it restarts, so its health port must say "drain",
#              not "down": HAProxy keeps its sticky users on n1 and sends no
#              new user there until the daemon says it is ready. To see that
#              window for sure, n2's and n3's daemons are frozen (SIGSTOP)
#              for ~1 s around n1's start, so n1 cannot catch up: the port
#              says "drain", HAProxy shows n1 in DRAIN, a new user goes to n2,
#              and n1's users are still answered by n1. Then the peers
#              thaw, n1 becomes ready, says "up", and HAProxy has it UP
#              (in rotation for everyone) again. Each answer to an n1 user,
#              in every window (daemon dead, restarted, ready), is judged
#              against what that user saw last: an older counter, a live
#              user not logged in, or a logged-out user logged in, is a
#              failure; so is a first answer after the restart from a node
#              other than n1 (the peers lack their last clicks).
# While n1 is down (2 s) it misses hundreds of updates and dozens of
# logouts. Then up to 40 users written meanwhile (on n2/n3) and 20 logged
# out meanwhile start clicking through HAProxy with the cookie SRV=n1
# (pinned to n1), every 0.5 s; HAProxy sends them to n2 until n1 is back in
# rotation (in c they start once n1 is ready: while its daemon was dead n1
# was in rotation, so a user whose cookie says n1 clicked there, not on n2;
# during "drain" HAProxy would send only such users to n1).
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
# All must be 0 (n1's own users of c included).
# Then files on n2 and n3 that are not PHP's own (another uid's, a second
# hard link) must not hold n1's readiness: they are never sent, so n1 must
# not wait for them (ready well before ready_timeout = 5s): once with files
# n2 and n3 know are not PHP's own (chown; a link they were told about by an
# event), once with a second name made outside the directory, which no
# inotify event reports. Then, with n3 unreachable and ready_timeout = 3s on n1:
# `--wait-ready 1` exits 1, the health port says "down" and HAProxy takes
# n1 (whose web server runs) out of rotation; `--wait-ready 10` exits 0
# after ~3 s with n3 not waited for, the port says "up", n1 is back in.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
# php -S as root (lib_web.sh IT_WEB=phps): this test also writes sessions
# with lib.sh's php_session (PHP as root) and plants files of other owners
# next to PHP's, so PHP's user here is root.
: "${IT_WEB:=phps}"
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
# word_is WORDS STATE: the agent's answer WORDS (e.g. "up", "up ready",
# "drain") tells HAProxy STATE: up (in rotation), drain (sticky users only)
# or down (no users).
word_is() {
	local w=" $1 "
	case $2 in
	up) [[ $w == *" up "* && $w != *" drain "* && $w != *" down "* && $w != *" maint "* ]] ;;
	drain) [[ $w == *" drain "* && $w != *" down "* && $w != *" maint "* ]] ;;
	down) [[ $w == *" down "* ]] ;;
	*) return 1 ;;
	esac
}
health_is() { word_is "$(health_word "$1")" "$2"; }
lb_drain() { [[ $(lb_state "$1") == DRAIN* ]]; }
lb_down() { [[ $(lb_state "$1") == DOWN* ]]; }
# new_user_node: the node a request without cookies (a new user) lands on.
new_user_node() {
	curl -sS --max-time 5 "http://127.0.0.1:$(lb_port)/?action=health" | sed -n 's/^node=\(n[0-9]*\) ok$/\1/p'
}

for i in 1 2 3; do check "n$i is ready" wait_until 10 node_ready "$i"; done
for i in 1 2 3; do check "HAProxy has n$i in rotation" wait_until 5 lb_up "$i"; done
check "n1's health port says up" health_is 1 up

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
# run_phase P HOW: n1 goes away HOW (stop, reboot, wiped, kill9) for DOWN_S
# seconds while the load goes on, and comes back; phase P's probe users judge
# its first answers.
run_phase() {
	local p=$1 how=$2 mark t0 t_ready rc ms first word="" word0="" drain_state="" hold_ms=0 pid2 pid3
	local -a counts
	if [[ $how == kill9 ]]; then
		touch "$CTL/n1login"
		check "($p) n1's own users log in on n1 through HAProxy; their sessions reach n2 and n3" \
			wait_until 20 test -e "$CTL/n1in"
	fi
	mark=$(log_mark 1)
	case $how in
	kill9)
		daemon_kill9 1
		touch "$CTL/n1dead"
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
	if [[ $how == kill9 ]]; then
		check "($p) n1's users wrote on n1, and some logged out there, while its daemon was dead" \
			wait_until 5 test -e "$CTL/n1out"
		# Hold n1 not ready: n2's and n3's daemons frozen, so n1's
		# comparisons wait (well within its ready_timeout, 30 s).
		pid2=$(daemon_pid 2) pid3=$(daemon_pid 3)
		kill -STOP "$pid2" "$pid3" || fail "($p) SIGSTOP n2's and n3's daemons"
		fault_at_exit "kill -CONT $pid2 $pid3 2>/dev/null"
		touch "$CTL/n1restart"
		check "($p) the load counted what n1 alone holds" wait_until 3 test -e "$CTL/n1counted"
	fi
	t0=$(now_ms)
	check "($p) n1's daemon starts" daemon_start 1
	if [[ $how == kill9 ]]; then
		# The web server never stopped, and PHP wrote there meanwhile.
		word=$(health_word 1)
		word0=$word
		touch "$CTL/n1started"
		if word_is "$word" drain; then
			ok "($p) right after the restart n1's health port says \"$word\" (drain: PHP wrote there while no daemon ran)"
		else
			fail "($p) right after the restart n1's health port says \"$word\", not drain (PHP wrote there while no daemon ran)"
		fi
		check "($p) n1 logs that PHP changed sessions while no daemon ran" \
			log_has_since 1 "$mark" 'PHP changed [0-9]+ session\(s\) here while sessyncd was not running'
		assert_eq "$(node_stat 1 ready)" False "($p) n1 is not ready (n2 and n3 frozen)"
		check "($p) HAProxy has n1 in DRAIN" wait_until 3 lb_drain 1
		drain_state=$(lb_state 1)
		assert_eq "$(new_user_node)" n2 "($p) a new user goes to n2, not to draining n1"
		sleep 1   # n1's users go on clicking on draining n1
		check "($p) n1's health port still says drain (not ready yet)" health_is 1 drain
		check "($p) HAProxy still has n1 in DRAIN" lb_drain 1
		hold_ms=$(($(now_ms) - t0))
		kill -CONT "$pid2" "$pid3" || fail "($p) SIGCONT n2's and n3's daemons"
	fi
	sessync_cli 1 --wait-ready 20 >/dev/null 2>>"$T/wait-ready.err"
	rc=$?
	t_ready=$(now_ms)
	assert_eq "$rc" 0 "($p) --wait-ready exits 0"
	if [[ $how == kill9 ]]; then
		touch "$CTL/n1ready"
		word=$(health_word 1)
		if word_is "$word" up; then
			ok "($p) once ready n1's health port says \"$word\""
		else
			fail "($p) once ready n1's health port says \"$word\", not up"
		fi
		if wait_until 3 lb_up 1; then
			ok "($p) HAProxy puts n1 back in rotation (UP) once it is ready"
		else
			fail "($p) HAProxy puts n1 back in rotation (UP) once it is ready: $(lb_state 1)" \
				"(the agent said \"$word\"; HAProxy leaves DRAIN only on \"ready\")"
		fi
		touch "$CTL/probe-$p"
	else
		web_start 1 || fail "($p) n1's web server starts"
	fi
	check "($p) every probe user has had an answer from n1" wait_until 30 test -e "$CTL/result-$p.json"
	ms=$(ready_ms 1 "$mark")
	if [[ $how == kill9 ]]; then
		it_note "measured: ($p $how) n1's health port said \"$word0\" right after its restart (HAProxy then:" \
			"$drain_state); n2 and n3 frozen for the first $hold_ms ms; ready ${ms:-?} ms after the start"
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

# n1's own users (phase c): every answer they had, by when it was sent.
if [[ " $PHASES " == *" c "* ]]; then
	mapfile -t n1r < <(python3 - "$T/n1.json" <<-'EOF'
		import json, sys
		r = json.load(open(sys.argv[1]))
		w = {k: r[k] for k in ("before", "dead", "restart", "ready")}
		f = r["first_after_restart"]
		print(r["users"], r["out"], r["n1only_live"], r["n1only_out"], r["errors"], r["logins_elsewhere"])
		print(sum(x["stale"] for x in w.values()), sum(x["resurrected"] for x in w.values()),
		      sum(x["unexpected"] for x in w.values()))
		print(w["dead"]["n1"], w["dead"]["elsewhere"], w["restart"]["n1"], w["restart"]["elsewhere"])
		print(f["n1"], f["elsewhere"], f["ok"], f["bad"], f["missing"])
		print("; ".join("%s: %d requests (%d on n1), %d stale, %d resurrected" % (k, x["requests"], x["n1"],
		      x["stale"], x["resurrected"]) for k, x in w.items()))
		print(" | ".join(r["notes"]) or "-")
	EOF
	)
	read -r n1_users n1_out n1only_live n1only_out n1_errors n1_elsewhere <<<"${n1r[0]:-}"
	read -r n1_stale n1_res n1_unexp <<<"${n1r[1]:-}"
	read -r dead_n1 dead_else restart_n1 restart_else <<<"${n1r[2]:-}"
	read -r f_n1 _ f_ok f_bad f_missing <<<"${n1r[3]:-}"
	it_note "measured: (c) n1's own users: ${n1_users:-?} logged in on n1, ${n1_out:-?} logged out while its daemon was dead;" \
		"at the restart the peers lacked the last clicks of ${n1only_live:-?} and the logouts of ${n1only_out:-?}"
	it_note "measured: (c) n1's own users, by window: ${n1r[4]:-?}"
	[[ ${n1r[5]:-} != - ]] && it_note "(c) n1's users: ${n1r[5]:-}"
	assert_eq "${n1_elsewhere:-x}:${n1_errors:-x}" 0:0 "(c) n1's users logged in on n1, every request answered"
	assert_eq "${n1only_live:-x}:${n1only_out:-x}" "$((n1_users - n1_out)):$n1_out" \
		"(c) at the restart n1 alone held every n1 user's last clicks and every logout made there"
	if ((${dead_n1:-0} >= n1_users - n1_out && ${dead_else:-1} == 0)); then
		ok "(c) while the daemon was dead n1 answered its users ($dead_n1 requests)"
	else
		fail "(c) while the daemon was dead n1 answered its users ($dead_n1 on n1, $dead_else elsewhere)"
	fi
	assert_eq "${n1_stale:-x}" 0 "(c) no n1 user saw an older counter or lost its login"
	assert_eq "${n1_res:-x}" 0 "(c) no n1 user logged out was logged in again"
	assert_eq "${n1_unexp:-x}" 0 "(c) no n1 user saw a counter it never wrote"
	assert_eq "${f_ok:-x}:${f_bad:-x}:${f_missing:-x}" "$n1_users:0:0" \
		"(c) every n1 user's first request after the restart saw their newest state"
	assert_eq "${f_n1:-x}:${restart_else:-x}" "$n1_users:0" \
		"(c) n1 answered them until it was ready, first request after the restart included ($restart_n1 requests)"
fi

# ---------------------------------------------------------------- files that are not PHP's own
# Sessions PHP writes on n2 while n1 is down (so n2 and n3 hold what n1
# lacks) that then stop being PHP's own on n2 and n3: n1 must not wait for
# them, they are never sent.
NOBODY=65534
mkdir -p "$T/outside"
# skipped_on I N: node I counts N files that are not PHP's own.
skipped_on() { [[ $(node_stat "$1" skipped) == "$2" ]]; }
# unowned_round R DESC SID...: n1 stopped, the SIDs written on n2, reaching
# n3, then each made not PHP's own on n2 and n3 by `unown SID I`; n1 restarts
# with ready_timeout 5s and must be ready within 2.5 s, with the plain
# session written alongside and none of the SIDs.
unowned_round() {
	local r=$1 desc=$2 sid i t0 rc ms mark2
	shift 2
	daemon_stop 1 >/dev/null
	for sid in "$@" "plain$r"; do
		php_session 2 "$sid" '$_SESSION["user"] = "x";' || fail "($r) PHP writes sess_$sid on n2"
	done
	for sid in "$@" "plain$r"; do
		check "($r) sess_$sid reaches n3" wait_until 5 files_equal "$(node_sess_file 2 "$sid")" "$(node_sess_file 3 "$sid")"
	done
	for i in 2 3; do
		for sid in "$@"; do unown "$sid" "$i"; done
	done
	[[ $r == d1 ]] && for i in 2 3; do
		check "($r) n$i counts them as not PHP's own" wait_until 5 skipped_on "$i" "$#"
	done
	node_conf_set 1 ready_timeout 5s
	mark2=$(log_mark 1)
	t0=$(now_ms)
	check "($r) n1's daemon starts" daemon_start 1
	sessync_cli 1 --wait-ready 10 >/dev/null 2>>"$T/wait-ready.err"
	rc=$?
	ms=$(($(now_ms) - t0))
	it_note "measured: ($r) n1 ready ${ms} ms after its start, with $desc on n2 and n3 (ready_timeout 5 s)"
	assert_eq "$rc" 0 "($r) --wait-ready exits 0"
	if ((ms < 2500)) && log_has_since 1 "$mark2" 'ready: caught up with 2 peer\(s\), 0 not waited for'; then
		ok "($r) $desc on n2 and n3 do not hold n1's readiness (ready after $ms ms, both peers caught up)"
	else
		fail "($r) $desc on n2 and n3 do not hold n1's readiness (ready after $ms ms:" \
			"$(log_since 1 "$mark2" | grep -o 'ready: .*' | tail -n 1))"
	fi
	check "($r) n1 got the plain session" wait_until 5 test -e "$(node_sess_file 1 "plain$r")"
	for sid in "$@"; do
		check "($r) n1 did not get sess_$sid" test ! -e "$(node_sess_file 1 "$sid")"
	done
}
# unown SID I: sess_SID on node I stops being PHP's own: "owner*" is given to
# nobody (chown: an event tells the daemon), "linkseen*" gets a second name
# outside the directory and a chmod (the event makes the daemon look: 2
# links), "link*" only the second name (no event reports it).
unown() {
	local f
	f=$(node_sess_file "$2" "$1")
	case $1 in
	owner*) chown "$NOBODY" "$f" ;;
	linkseen*) ln "$f" "$T/outside/$1.n$2" && chmod 0600 "$f" ;;
	link*) ln "$f" "$T/outside/$1.n$2" ;;
	esac
}
unowned_round d1 "a file of another uid and a hard-linked file the daemons know of" ownerD1x0123 linkseenD1x0123
unowned_round d2 "a session given a second name (hard link) outside the dir, unseen by any event" linkD2x0123

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
check "n1's health port says down" health_is 1 down
sessync_cli 1 --wait-ready 1 >/dev/null 2>"$T/wait-ready1.err"
assert_eq "$?" 1 "--wait-ready 1 exits 1 (ready_timeout 3 s is longer)"
assert_contains "$(cat "$T/wait-ready1.err")" "n3 not compared yet" "--wait-ready says what it waits for"
check "HAProxy takes n1 out (agent: down)" wait_until 2 lb_down 1
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
check "n1's health port says up" health_is 1 up
check "HAProxy puts n1 back" wait_until 2 lb_up 1

it_finish
