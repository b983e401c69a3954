# The failover story, told by `make demo` and checked by t_failover.sh.
# Sourced after lib.sh and lib_web.sh; every step prints what happened and how
# long it took, and every expectation is an ok/fail check.
#
#   HAProxy (cookie stickiness) -> nginx -> php-fpm (pool as www-data) on
#   n1, n2, n3 (lib_web.sh; IT_WEB=phps: php -S), each with its own session
#   directory, sessyncd and sshd.
#   alice logs in (lands on n1) and clicks; n1 dies (SIGKILL to all of its
#   processes at once); her next click lands on n2, still logged in, counter
#   intact, and the time from the kill to that answer is measured; she logs
#   out on n2; n1 comes back, HAProxy (agent-check on sessyncd's health port)
#   and the web server wait until n1's sessyncd is ready, and she is logged
#   out there too.

story_say() { printf '%s\n' "${STORY_BOLD:-}== $*${STORY_PLAIN:-}"; }
story_step() { printf '   %s\n' "$*"; }

# expect BODY PATTERN DESC
story_expect() {
	if [[ $1 =~ $2 ]]; then
		ok "$3"
	else
		fail "$3 (got: ${1:-nothing})"
	fi
}

failover_story() {
	local body t0 ms sid i word tries deadline gone

	story_say "cluster: HAProxy + 3 PHP nodes on 127.0.0.1 ($(web_kind)), each with its own sessions, sshd and sessyncd"
	web_cluster_create 3 >/dev/null || it_abort "cluster setup failed"
	cluster_start >/dev/null || it_abort "cluster did not start"
	for i in 1 2 3; do web_start "$i" || it_abort "$(web_kind) on n$i did not start"; done
	lb_start 3 || it_abort "haproxy did not start"
	for i in 1 2 3; do
		story_step "n$i: web 127.0.0.1:$(web_port "$i"), sshd 127.0.0.1:$(node_port "$i"), sessions $(node_sessions "$i") ($(stat -c '%U %a' "$(node_sessions "$i")"))"
	done
	[[ $IT_WEB == phps ]] ||
		story_step "each: nginx (worker as $IT_PHP_USER) -> php-fpm pool as $IT_PHP_USER on a unix socket; sessyncd as root with php_user = $IT_PHP_USER"
	story_step "load balancer: http://127.0.0.1:$(lb_port)/ (sticky cookie SRV)"
	wait_until 10 bash -c "[ \$('$SESSYNCD' -c '$(node_conf 1)' --status --json | grep -o '\"connected\": true' | wc -l) -eq 2 ]" ||
		it_abort "n1's sessyncd did not connect to its peers"

	story_say "alice logs in"
	t0=$(now_ms)
	body=$(user_get login "&user=alice")
	story_step "$body ($(( $(now_ms) - t0 )) ms)"
	story_expect "$body" "node=n1 logged-in user=alice" "alice logged in on n1"
	sid=$(user_sid)
	for i in 1 2 3; do
		t0=$(now_ms)
		body=$(user_get page)
		story_step "click $i: $body ($(( $(now_ms) - t0 )) ms)"
	done
	story_expect "$body" "node=n1 user=alice counter=3" "three clicks on n1"
	t0=$(now_ms)
	if wait_until 5 files_equal "$(node_sess_file 1 "$sid")" "$(node_sess_file 2 "$sid")"; then
		story_step "her session is on n2 (same bytes, same mtime), checked $(( $(now_ms) - t0 )) ms after the click"
		ok "session replicated to n2"
	else
		fail "session replicated to n2"
	fi

	story_say "n1 dies: SIGKILL to its web server (with its workers), sessyncd and sshd at once"
	# She clicks right after the kill, and again until a node answers (a
	# request that fails is one she would retry); the clock runs from the
	# kill. stderr off: bash's "Killed" notices for n1's processes.
	{
		node_crash 1
		t0=$IT_CRASH_MS tries=0 deadline=$((IT_CRASH_MS + 10000))
		while :; do
			body=$(user_get page 2>&1)
			tries=$((tries + 1))
			[[ $body == node=* ]] && break
			(( $(now_ms) >= deadline )) && break
			sleep 0.05
		done
		ms=$(( $(now_ms) - t0 ))
		node_crash_wait && gone=$(( $(now_ms) - t0 )) || gone=-1
	} 2>/dev/null
	((gone >= 0)) || fail "n1's processes are gone within 5 s of SIGKILL"
	story_step "next click: $body"
	story_step "from the kill to her next page, answered by n2 with her session: $ms ms ($tries request(s); HAProxy redispatched to n2)"
	echo "# measured: failover on $(web_kind): from SIGKILL of n1 to the first answer from n2 with her session: $ms ms, $tries request(s)"
	story_expect "$body" "node=n2 user=alice counter=4" "after failover: still alice on n2, counter intact"
	if ((tries == 1)); then
		ok "her first click after the kill was answered (HAProxy retried n2 at once)"
	else
		fail "her first click after the kill was answered (it took $tries requests)"
	fi
	story_step "(all of n1's processes were gone and reaped $gone ms after the kill)"
	if wait_until 5 not lb_up 1; then
		story_step "HAProxy's health check took n1 out $(( $(now_ms) - t0 )) ms after the kill ($(lb_state 1 | cut -d'|' -f1))"
	else
		fail "HAProxy took n1 out within 5 s"
	fi
	body=$(user_get page)
	story_step "and again: $body"
	story_expect "$body" "node=n2 user=alice counter=5" "stays on n2"

	story_say "alice logs out on n2"
	t0=$(now_ms)
	body=$(user_get logout)
	story_step "$body"
	story_expect "$body" "node=n2 logged-out user=alice" "logged out on n2"
	if wait_until 5 test ! -e "$(node_sess_file 3 "$sid")"; then
		story_step "her session is gone from n3 $(( $(now_ms) - t0 )) ms later"
		ok "logout replicated to n3"
	else
		fail "logout replicated to n3"
	fi
	story_step "n1 is down and still holds her session: $(test -e "$(node_sess_file 1 "$sid")" && echo yes || echo no)"

	story_say "n1 comes back: sshd and sessyncd first, the web server once sessyncd is ready"
	sshd_start 1 >/dev/null
	t0=$(now_ms)
	daemon_start 1 >/dev/null
	word=$(health_word 1)
	if sessync_cli 1 --wait-ready 10 >/dev/null 2>&1; then
		ms=$(( $(now_ms) - t0 ))
		story_step "n1's sessyncd was ready $ms ms after it started (--wait-ready: it had caught up with n2 and n3)"
		story_step "its health port told HAProxy's agent-check \"$word\" right after start, \"$(health_word 1)\" now"
		ok "n1 became ready"
	else
		ms=-1
		fail "n1 became ready within 10 s"
	fi
	if test ! -e "$(node_sess_file 1 "$sid")"; then
		story_step "her stale session was gone from n1 by then (n2's tombstone beat n1's copy)"
		ok "logout reached n1 before it was ready"
	else
		fail "logout reached n1 before it was ready"
	fi
	web_start 1 || fail "$(web_kind) on n1 restarted"
	if wait_until 10 lb_up 1; then
		i=$(( $(now_ms) - t0 ))
		story_step "web server started; HAProxy put n1 back in rotation $i ms after its sessyncd started"
		echo "# measured: n1 back: ready $ms ms after its sessyncd started, in HAProxy's rotation after $i ms"
		ok "HAProxy put n1 back after it was ready"
	else
		fail "HAProxy put n1 back within 10 s"
	fi
	body=$(user_get_node 1 page)
	story_step "her old cookie, straight to n1: $body"
	story_expect "$body" "node=n1 not-logged-in" "logged out on n1 too"
	sleep 1
	for i in 1 2 3; do
		[[ -e $(node_sess_file "$i" "$sid") && -s $(node_sess_file "$i" "$sid") ]] && fail "n$i has alice's session again"
	done
	ok "no node brought her session back"

	story_say "sessyncd --status on n2"
	"$SESSYNCD" -c "$(node_conf 2)" --status | sed 's/^/   /'
}
