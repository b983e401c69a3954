# The web tier of a test cluster, sourced after lib.sh: one `php -S` per node
# serving tests/app with that node's session directory, and HAProxy in front
# with cookie stickiness. Everything on 127.0.0.1, stopped by PID.

WEB_APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../app" && pwd)

web_port() { cat "$T/n$1/web.port"; }
lb_port() { cat "$T/lb.port"; }

# A free loopback port in the harness's range, not reserved by anyone.
_web_free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		_it_port_listening "$p" && continue
		grep -qsx "$p" "$T"/*/port "$T"/*/web.port "$T"/lb.port && continue
		echo "$p"
		return 0
	done
	return 1
}

# web_start I: php's built-in server for node I, sessions in its directory.
web_start() {
	local i=$1 port
	port=$(cat "$T/n$i/web.port" 2>/dev/null) || port=$(_web_free_port) || return 1
	echo "$port" >"$T/n$i/web.port"
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
# sticky cookie; `balance first` sends new users to node 1, so the story is
# the same every run. A dead server is skipped at once (redispatch) and
# marked down by a 300 ms health check.
lb_start() {
	local n=$1 i port
	port=$(_web_free_port) || return 1
	echo "$port" >"$T/lb.port"
	{
		echo "global"
		echo "    maxconn 256"
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
			echo "    server n$i 127.0.0.1:$(web_port "$i") cookie n$i check inter 300ms fall 1 rise 2"
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
