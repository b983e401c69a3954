# The web tier of a test cluster, sourced after lib.sh: one `php -S` per node
# serving tests/app with that node's session directory, and HAProxy in front
# with cookie stickiness and each node's sessyncd as its agent-check.
# Everything on 127.0.0.1, stopped by PID. Ports are reserved like the
# nodes' (it_reserve_ports): $T/nI/web.port, $T/lb.port.
#
# Sourcing this turns on IT_HEALTH (unless the test set IT_HEALTH=0 first):
# cluster_create then gives every node health_listen = 127.0.0.1:PORT
# ($T/nI/health.port), and lb_start points HAProxy's agent-check there, so a
# node whose daemon says "down" (not ready) gets no users.

WEB_APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../app" && pwd)
: "${IT_HEALTH:=1}"

web_port() { cat "$T/n$1/web.port"; }
lb_port() { cat "$T/lb.port"; }

# web_start I: php's built-in server for node I, sessions in its directory.
# It keeps its port across restarts.
web_start() {
	local i=$1 port
	[[ -f $T/n$i/web.port ]] || it_reserve_ports "$T/n$i/web.port" || return 1
	port=$(cat "$T/n$i/web.port")
	NODE="n$i" php -n -S "127.0.0.1:$port" -t "$WEB_APP" \
		-d session.save_path="$(node_sessions "$i")" -d session.use_strict_mode=0 \
		-d session.gc_probability=0 -d session.lazy_write=1 -d session.cookie_httponly=1 \
		>>"$T/n$i/web.log" 2>&1 &
	echo $! >"$T/n$i/web.pid"
	it_track_pid "$!"
	wait_until 5 _it_port_listening "$port"
}

web_stop() {
	local pid
	pid=$(cat "$T/n$1/web.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	wait_until 5 bash -c "! kill -0 $pid 2>/dev/null"
	rm -f "$T/n$1/web.pid"
}

# lb_start N: HAProxy on a loopback port, balancing over nodes 1..N with a
# sticky cookie SRV (the value is the server's name, n1..nN); `balance first`
# sends new users to node 1, so the story is the same every run. A dead
# server is skipped at once (redispatch) and marked down by a 300 ms health
# check. Where the node has a health port, HAProxy also asks its sessyncd
# every 200 ms (agent-check): "down" takes the server out of rotation until
# the daemon says "up" (it is ready: docs/DESIGN.md "Readiness"), "drain"
# keeps only its sticky users (cookie SRV) there; a daemon that does not
# answer leaves the server as the HTTP check says. Its admin
# socket listens on 127.0.0.1:$(cat $T/lb.stats.port) (lb_cli, lb_state).
lb_start() {
	local n=$1 i port agent
	it_reserve_ports "$T/lb.port" "$T/lb.stats.port" || return 1
	port=$(lb_port)
	{
		echo "global"
		echo "    maxconn 256"
		echo "    stats socket ipv4@127.0.0.1:$(cat "$T/lb.stats.port") level admin"
		echo "defaults"
		echo "    mode http"
		echo "    timeout connect 1s"
		echo "    timeout client 10s"
		echo "    timeout server 10s"
		echo "    retries 3"
		echo "    option redispatch 1"
		echo "frontend web"
		echo "    bind 127.0.0.1:$port"
		echo "    default_backend php"
		echo "backend php"
		echo "    balance first"
		echo "    cookie SRV insert indirect nocache"
		echo "    option httpchk GET /?action=health"
		for ((i = 1; i <= n; i++)); do
			agent=""
			[[ -f $T/n$i/health.port ]] &&
				agent=" agent-check agent-port $(node_health_port "$i") agent-inter 200ms"
			echo "    server n$i 127.0.0.1:$(web_port "$i") cookie n$i check inter 300ms fall 1 rise 2$agent"
		done
	} >"$T/haproxy.cfg"
	haproxy -c -q -f "$T/haproxy.cfg" || return 1
	haproxy -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1 &
	echo $! >"$T/haproxy.pid"
	it_track_pid "$!"
	wait_until 5 _it_port_listening "$port"
}

# user_get ACTION [ARGS]: one request by the scripted user through the load
# balancer, with its cookie jar. Prints the body; returns curl's status.
user_get() {
	local action=$1 extra=${2:-}
	curl -sS --max-time 5 -b "$T/cookies" -c "$T/cookies" \
		"http://127.0.0.1:$(lb_port)/?action=$action$extra"
}

# user_get_node I ACTION: the same user, straight to node I (no balancer).
user_get_node() {
	curl -sS --max-time 5 -b "$T/cookies" "http://127.0.0.1:$(web_port "$1")/?action=$2"
}

# The user's session id, from the cookie jar.
user_sid() { awk '$6 == "PHPSESSID" {print $7}' "$T/cookies" | tail -n 1; }

# lb_cli CMD: one command on HAProxy's admin socket (TCP, $T/lb.stats.port),
# its answer on stdout; status 1 if HAProxy does not answer within 2 s.
lb_cli() {
	local fd line
	exec {fd}<>"/dev/tcp/127.0.0.1/$(cat "$T/lb.stats.port")" 2>/dev/null || return 1
	printf '%s\n' "$1" >&"$fd"
	while IFS= read -r -t 2 line <&"$fd"; do printf '%s\n' "$line"; done
	exec {fd}>&-
}

# lb_state I: HAProxy's view of server nI: its status ("UP", "DOWN",
# "DOWN (agent)", "DRAIN (agent)", "MAINT", ...) and the description of the
# last agent-check ("Layer7 check passed" for "up", "Layer7 wrong status"
# for "down", "No status change" for a bare "drain", "Layer4 connection
# problem" when no daemon answers), separated by "|"; status 1 if HAProxy
# does not answer. HAProxy leaves DRAIN only when the agent says "ready"
# (with or without "up"); "up" alone keeps it draining.
lb_state() {
	lb_cli "show stat" | awk -F, -v s="n$1" '
		NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
		$1 == "php" && $2 == s { print $col["status"] "|" $col["agent_desc"]; found = 1 }
		END { exit !found }'
}

# lb_up I: HAProxy sends users to server nI.
lb_up() { [[ $(lb_state "$1") == UP\|* ]]; }
