# The web tier of a test cluster, sourced after lib.sh: per node a web server
# serving tests/app with that node's session directory, and HAProxy in front
# with cookie stickiness and each node's sessyncd as its agent-check.
# Everything on 127.0.0.1, stopped by PID. Ports are reserved like the
# nodes' (it_reserve_ports): $T/nI/web.port, $T/lb.port.
#
# IT_WEB chooses the web server (set it before sourcing, or in the
# environment):
#   fpm   (default) production's stack, Debian's packages: per node a private
#         php-fpm master (php-fpm8.2, its own php-fpm.conf and php.ini, pool
#         "web" as www-data on a unix socket) behind a private nginx
#         (worker as www-data, its own nginx.conf, -e for its error log),
#         both in $T/nI/fpm and $T/nI/nginx; nothing of /etc/php, /etc/nginx
#         or /var/log is read or written. PHP runs as www-data, so the nodes
#         are laid out as the README's guide lays them out: web_cluster_create
#         gives each session directory to www-data (mode 0700) and sets
#         php_user = www-data in each sessync.conf (the daemon runs as root:
#         daemon/strict.c "a daemon started as root needs php_user"), and
#         makes $T traversable (0711) for www-data. lib.sh's php_session
#         helpers run PHP as root, whose files a node with php_user =
#         www-data does not send: in this mode, write sessions over HTTP
#         (web_login).
#   phps  `php -S` as root per node (no php_user): for a test that needs
#         nothing more, or that plants files as root and PHP's user alike.
#
# Sourcing this turns on IT_HEALTH (unless the test set IT_HEALTH=0 first):
# cluster_create then gives every node health_listen = 127.0.0.1:PORT
# ($T/nI/health.port), and lb_start points HAProxy's agent-check there, so a
# node whose daemon says "down" (not ready) gets no users.

WEB_APP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../app" && pwd)
: "${IT_HEALTH:=1}"
: "${IT_WEB:=fpm}"
IT_PHP_USER=${IT_PHP_USER:-www-data}   # the fpm pool's user, and the nodes' php_user
IT_PHP_FPM=${IT_PHP_FPM:-}             # default: the newest /usr/sbin/php-fpm*
IT_NGINX=${IT_NGINX:-/usr/sbin/nginx}

web_port() { cat "$T/n$1/web.port"; }
lb_port() { cat "$T/lb.port"; }

# web_kind: what web_start starts, "php-fpm + nginx" or "php -S".
web_kind() { [[ $IT_WEB == phps ]] && echo "php -S" || echo "php-fpm + nginx"; }

# web_cluster_create N: cluster_create N, then (IT_WEB=fpm) each node's
# sessions given to PHP's user as the README's step 3 does (mode 0700) and
# php_user set, before any daemon starts.
web_cluster_create() {
	local i
	cluster_create "$1" || return 1
	[[ $IT_WEB == phps ]] && return 0
	id -u "$IT_PHP_USER" >/dev/null 2>&1 || { echo "web_cluster_create: no user $IT_PHP_USER" >&2; return 1; }
	# www-data must reach the sessions, the app and the fpm socket through $T
	# (mktemp made it 0700): search only, no listing, no writing.
	chmod 0711 "$T" || return 1
	for ((i = 1; i <= IT_NODES; i++)); do
		chown "$IT_PHP_USER:" "$(node_sessions "$i")" && chmod 0700 "$(node_sessions "$i")" &&
			node_conf_set "$i" php_user "$IT_PHP_USER" || return 1
	done
}

# _web_fpm_bin: the php-fpm binary (php8.2-fpm's php-fpm8.2 on Debian 12).
_web_fpm_bin() {
	local f
	if [[ -n $IT_PHP_FPM ]]; then echo "$IT_PHP_FPM"; return 0; fi
	f=$(printf '%s\n' /usr/sbin/php-fpm* | sort -V | tail -n 1)
	[[ -x $f ]] || { echo "php-fpm not installed (package php-fpm, tests/deps)" >&2; return 1; }
	echo "$f"
}

# _web_health I: node I's web server answers the load balancer's check.
_web_health() {
	[[ $(curl -s --max-time 2 "http://127.0.0.1:$(web_port "$1")/?action=health") == "node=n$1 ok" ]]
}

# _web_files I: write node I's php.ini, php-fpm.conf and nginx.conf, and
# copy the app where www-data can read it ($T/www; the repository may sit
# under a directory www-data cannot enter).
_web_files() {
	local i=$1 d=$T/n$1 port
	port=$(web_port "$i")
	if [[ ! -f $T/www/index.php ]]; then
		install -d -m 0755 "$T/www" && install -m 0644 "$WEB_APP"/*.php "$T/www/" || return 1
	fi
	install -d -m 0755 "$d/fpm" "$d/nginx" "$d/nginx/tmp" || return 1
	# What web_start's php -S sets with -d, and the files handler written
	# out (-c: this file is PHP's php.ini; PHP_INI_SCAN_DIR= keeps
	# /etc/php/*/fpm/conf.d out).
	cat >"$d/fpm/php.ini" <<-EOF
		; php.ini of node n$i's php-fpm (tests/integration/lib_web.sh)
		session.save_handler = files
		session.save_path = "$d/sessions"
		session.use_strict_mode = 0
		session.gc_probability = 0
		session.lazy_write = 1
		session.cookie_httponly = 1
		display_errors = Off
		log_errors = On
		error_reporting = E_ALL
	EOF
	cat >"$d/fpm/php-fpm.conf" <<-EOF
		; php-fpm.conf of node n$i (tests/integration/lib_web.sh): master as
		; root in the foreground, pool "web" as $IT_PHP_USER, as production runs it.
		[global]
		pid = $d/fpm/php-fpm.pid
		error_log = $d/fpm/error.log
		daemonize = no
		process_control_timeout = 2s

		[web]
		user = $IT_PHP_USER
		group = $(id -gn "$IT_PHP_USER")
		listen = $d/fpm/php-fpm.sock
		listen.owner = $IT_PHP_USER
		listen.group = $(id -gn "$IT_PHP_USER")
		listen.mode = 0660
		pm = static
		pm.max_children = 3
		chdir = /
		clear_env = yes
		env[NODE] = n$i
		catch_workers_output = yes
		decorate_workers_output = no
	EOF
	# The FastCGI parameters are written here rather than included from
	# /etc/nginx/fastcgi_params: nothing of the machine's nginx is used.
	cat >"$d/nginx/nginx.conf" <<-EOF
		# nginx.conf of node n$i (tests/integration/lib_web.sh)
		daemon off;
		master_process on;
		worker_processes 1;
		user $IT_PHP_USER $(id -gn "$IT_PHP_USER");
		pid $d/nginx/nginx.pid;
		error_log $d/nginx/error.log notice;
		events { worker_connections 256; }
		http {
		    access_log $d/nginx/access.log;
		    default_type text/plain;
		    client_body_temp_path $d/nginx/tmp/body;
		    proxy_temp_path $d/nginx/tmp/proxy;
		    fastcgi_temp_path $d/nginx/tmp/fastcgi;
		    uwsgi_temp_path $d/nginx/tmp/uwsgi;
		    scgi_temp_path $d/nginx/tmp/scgi;
		    server {
		        listen 127.0.0.1:$port;
		        root $T/www;
		        location / {
		            fastcgi_pass unix:$d/fpm/php-fpm.sock;
		            fastcgi_param SCRIPT_FILENAME $T/www/index.php;
		            fastcgi_param SCRIPT_NAME /index.php;
		            fastcgi_param QUERY_STRING \$query_string;
		            fastcgi_param REQUEST_METHOD \$request_method;
		            fastcgi_param CONTENT_TYPE \$content_type;
		            fastcgi_param CONTENT_LENGTH \$content_length;
		            fastcgi_param REQUEST_URI \$request_uri;
		            fastcgi_param DOCUMENT_URI \$document_uri;
		            fastcgi_param DOCUMENT_ROOT \$document_root;
		            fastcgi_param SERVER_PROTOCOL \$server_protocol;
		            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
		            fastcgi_param SERVER_SOFTWARE nginx;
		            fastcgi_param REMOTE_ADDR \$remote_addr;
		            fastcgi_param REMOTE_PORT \$remote_port;
		            fastcgi_param SERVER_ADDR \$server_addr;
		            fastcgi_param SERVER_PORT \$server_port;
		            fastcgi_param SERVER_NAME \$server_name;
		            fastcgi_param REDIRECT_STATUS 200;
		        }
		    }
		}
	EOF
}

# web_start I: node I's web server (IT_WEB), sessions in its directory;
# returns once it answers the health check through to PHP (bounded by
# IT_START_TIMEOUT), 1 otherwise. It keeps its port across restarts.
web_start() {
	local i=$1 d=$T/n$1 port fpm pid
	[[ -f $d/web.port ]] || it_reserve_ports "$d/web.port" || return 1
	port=$(web_port "$i")
	if [[ $IT_WEB == phps ]]; then
		NODE="n$i" php -n -S "127.0.0.1:$port" -t "$WEB_APP" \
			-d session.save_path="$(node_sessions "$i")" -d session.use_strict_mode=0 \
			-d session.gc_probability=0 -d session.lazy_write=1 -d session.cookie_httponly=1 \
			>>"$d/web.log" 2>&1 &
		echo $! >"$d/web.pid"
		it_track_pid "$!"
		wait_until 5 _it_port_listening "$port"
		return
	fi
	fpm=$(_web_fpm_bin) || return 1
	_web_files "$i" || return 1
	rm -f "$d/fpm/php-fpm.sock"
	"$fpm" -t -c "$d/fpm/php.ini" -y "$d/fpm/php-fpm.conf" >>"$d/web.log" 2>&1 || {
		echo "web_start $i: php-fpm -t rejected $d/fpm/php-fpm.conf" >&2; tail -n 5 "$d/web.log" >&2; return 1; }
	PHP_INI_SCAN_DIR="" "$fpm" --nodaemonize -c "$d/fpm/php.ini" -y "$d/fpm/php-fpm.conf" \
		</dev/null >>"$d/web.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/fpm.pid"
	it_track_pid "$pid"
	if ! _it_wait_start "$pid" test -S "$d/fpm/php-fpm.sock"; then
		echo "web_start $i: php-fpm did not listen on $d/fpm/php-fpm.sock" >&2
		tail -n 5 "$d/fpm/error.log" >&2 2>/dev/null
		return 1
	fi
	"$IT_NGINX" -t -q -e "$d/nginx/error.log" -p "$d/nginx/" -c "$d/nginx/nginx.conf" >>"$d/web.log" 2>&1 || {
		echo "web_start $i: nginx -t rejected $d/nginx/nginx.conf" >&2; tail -n 5 "$d/web.log" >&2; return 1; }
	"$IT_NGINX" -e "$d/nginx/error.log" -p "$d/nginx/" -c "$d/nginx/nginx.conf" </dev/null >>"$d/web.log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/web.pid"
	it_track_pid "$pid"
	if ! _it_wait_start "$pid" _web_health "$i"; then
		echo "web_start $i: nginx -> php-fpm on 127.0.0.1:$port does not answer" >&2
		tail -n 5 "$d/nginx/error.log" "$d/fpm/error.log" >&2 2>/dev/null
		return 1
	fi
}

# web_pids I: the PIDs of node I's web server (nginx's master, then
# php-fpm's; php -S), one a line; their workers are their children.
web_pids() { cat "$T/n$1/web.pid" "$T/n$1/fpm.pid" 2>/dev/null; }

# web_stop I: stop node I's web server: nginx, then php-fpm, each with its
# workers (SIGTERM, SIGKILL after IT_STOP_TIMEOUT).
web_stop() {
	local pid
	for pid in $(web_pids "$1"); do _it_stop_tree "$pid" TERM any; done
	rm -f "$T/n$1/web.pid" "$T/n$1/fpm.pid"
}

# node_crash I: node I dies at once: SIGKILL, in one kill(1), to its web
# server (nginx, php-fpm and their workers), its sessyncd and its sshd with
# every connection. Sets IT_CRASH_MS to the time of the kill (now_ms) and
# returns at once, as a user's next click does not wait either;
# node_crash_wait waits for them to be gone. Bash prints a "Killed" notice
# for each of them that is its child when it reaps it: run both, and what
# happens in between, with stderr sent elsewhere.
IT_CRASHED=()
node_crash() {
	local d=$T/n$1 p
	local -a all=()
	for p in $(web_pids "$1") $(daemon_pid "$1") $(cat "$d/sshd/pid" 2>/dev/null); do
		_it_alive "$p" || continue
		all+=("$p")
		mapfile -t -O "${#all[@]}" all < <(_it_descendants "$p")
	done
	IT_CRASHED=("${all[@]}")
	# shellcheck disable=SC2034  # the caller's clock
	IT_CRASH_MS=$(now_ms)
	((${#all[@]})) && kill -KILL "${all[@]}"
	rm -f "$d/web.pid" "$d/fpm.pid" "$d/sshd/pid" "$d/sshd/sshd.pid" "$d/daemon.pid"
	echo "=== it: $(date +%T.%3N) node_crash n$1 (SIGKILL to ${#all[@]} processes)" >>"$d/daemon.log"
}

# node_crash_wait: every process of the last node_crash is gone (and
# reaped); 1 if one is left after 5 s.
node_crash_wait() {
	local p
	wait_until 5 _it_none_alive "${IT_CRASHED[@]}" || return 1
	for p in "${IT_CRASHED[@]}"; do wait "$p"; done
	return 0
}

# web_login I JAR USER [CART]: USER logs in on node I straight (no
# balancer), with cookie jar JAR, and, with CART, puts 1..CART in the
# cart; prints the answer. The session id is then web_jar_sid JAR.
web_login() {
	curl -sS --max-time 5 -b "$2" -c "$2" \
		"http://127.0.0.1:$(web_port "$1")/?action=login&user=$3${4:+&cart=$4}"
}

# web_jar_sid JAR: the session id in cookie jar JAR.
web_jar_sid() { awk '$6 == "PHPSESSID" {print $7}' "$1" | tail -n 1; }

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
