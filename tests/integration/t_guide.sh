#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317,SC2086,SC2001,SC2034,SC2089  # code in single quotes; helpers run via check; README commands split into words on purpose; IT_NODES is lib.sh's; UNIT_SANDBOX is bash source, passed on by declare -p
# The README's "## Configure a cluster", steps 1-7, performed literally on
# two nodes, web1 and web2, then PHP as www-data logs a user in on web1, PHP
# as www-data on web2 reads that session, and a logout on web2 reaches web1.
#
# The commands are not copied here: they are read from README.md (its ```sh
# and ```ini blocks and the `inline` commands of steps 3, 4, 5 and 7, and the
# make line of "## Install") and run as they are, with only the substitutions
# the guide itself names: the node's name (web1/web2 swap on web2), the
# peer's address for 10.0.0.2, and webN.pub, a copy of the peer's public key.
# A README that changes changes what runs; a README the test cannot follow
# any more (a step, block or command gone) fails it.
#
# Each node is a network namespace (a veth pair, 10.77.0.1/24 and
# 10.77.0.2/24) and a private mount namespace in which /etc is a copy of the
# machine's (without its SSH host keys), /var and /run are private
# directories laid out as on Debian, /usr/local is empty: useradd, the
# fstab line, make install, the keys and the session tmpfs all land there,
# never in the machine's own /etc, /var or /usr/local. Each node runs the
# distribution's sshd on port 22 of its address. `systemctl enable --now`
# is the one command that is emulated: the socket unit's socket is held, as
# root, by tests/integration/sockact.py (its SocketUser=, SocketGroup=,
# SocketMode=, DirectoryMode=), which starts the service now and on any
# connection while it is down, passing the socket (LISTEN_FDS, fd 3); the
# test reads the installed unit and starts its ExecStartPre= and ExecStart= as systemd would (User=, Group=,
# the supplementary groups initgroups(User, Group) gives, UMask=,
# NoNewPrivileges=, RuntimeDirectory=, ProtectSystem=strict with
# ReadWritePaths=, PrivateTmp=, a clean environment; the other sandboxing
# lines, seccomp and capabilities, are not emulated).
#
# Then step 8's web tier, from Debian's packages with their own configs:
# the drop-ins of conf/systemd installed, php-fpm (Debian's pool "www", as
# www-data) and nginx (a site for it: not in the guide) started as systemd
# would start them with those drop-ins: their ExecStartPre=, sessyncd
# --wait-ready, first. Then: --status as root, as sessync and as another
# member of sessync (and refused for others); a login on web1 through PHP's
# own files handler (php-fpm behind nginx) read on web2 and a logout on web2
# that reaches web1;
# what the layout closes (a file not PHP's does not travel, PHP cannot read
# the key or the config, --serve needs --from); "Run it"'s maintenance: with
# both daemons stopped (their sockets stay), a --full-sync on web1 starts
# web2's daemon through its socket and exits 0; step 3's warning (Debian's
# 1733 directory is refused); and the machine's own files untouched.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_guide
it_require_daemon
if [[ $(id -u) != 0 ]]; then
	echo "# SKIP t_guide: needs root (network and mount namespaces, useradd in them)"
	exit 77
fi
FPM_BIN=$(printf '%s\n' /usr/sbin/php-fpm* | sort -V | tail -n 1)   # Debian 12: php-fpm8.2
FPM_UNIT=php${FPM_BIN#/usr/sbin/php-fpm}-fpm                        # its unit: php8.2-fpm
for c in ip unshare nsenter setpriv php curl ssh-keyscan ssh-keygen useradd python3 "$IT_SSHD" \
	"${FPM_BIN:-php-fpm}" nginx; do
	command -v "$c" >/dev/null || { echo "# SKIP t_guide: $c not installed (tests/deps)"; exit 77; }
done

WAIT=${IT_WAIT:-10}            # seconds for a change to reach the other node
README=${IT_README:-$REPO/README.md}   # IT_README: try the test on a proposed README
ADMIN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin   # root's, and systemd's default
NAME=("" web1 web2)
ADDR=("" 10.77.0.1 10.77.0.2)
RUN_ID=${T##*.}
NS=("" "sessync-it-$RUN_ID-web1" "sessync-it-$RUN_ID-web2")
HOLDER=("" "" "")              # per node: the process whose namespaces are the node
NS_MADE=()
WEB_PORT=8080

# ---------------------------------------------------------------- the README

# readme_section TITLE: the lines of "## TITLE" up to the next "## ".
readme_section() {
	awk -v t="## $1" '/^## / { on = ($0 == t); next } on' "$README"
}

# guide_step N: step N of "Configure a cluster" (from "N. " to the next
# step), with the list item's 3-space indent removed.
guide_step() {
	readme_section "Configure a cluster" | awk -v n="$1" '
		/^ *```/ { f = !f }
		!f && /^[0-9]+\. / { cur = $1 + 0 }
		cur == n { sub(/^   /, ""); print }'
}

# fenced LANG: the body of the ```LANG blocks on stdin.
fenced() {
	awk -v l="$1" '/^```/ { if (inb) inb = 0; else { inb = 1; lang = substr($0, 4) }; next }
		inb && lang == l'
}

# spans: the `inline code` spans on stdin outside fenced blocks, one a line
# (a span wrapped over two lines is joined with one space).
spans() {
	awk '/^```/ { inb = !inb; next } !inb { sub(/^ +/, ""); printf "%s ", $0 } END { print "" }' |
		grep -o '`[^`]*`' | sed 's/^`//; s/`$//'
}

# span N PREFIX: the first inline span of step N that starts with PREFIX.
span() {
	guide_step "$1" | spans | awk -v p="$2" 'index($0, p) == 1 { print; exit }'
}

# need VAR WHAT: abort unless variable VAR is non-empty (the README lost WHAT).
need() {
	[[ -n ${!1} ]] || it_abort "README.md no longer has $2: update tests/integration/t_guide.sh with it"
}

# subst I TEXT: TEXT as node I runs it: web1 and web2 swapped on web2, the
# peer's address for the guide's 10.0.0.2.
subst() {
	local t=$2 peer=$((3 - $1))
	if (($1 == 2)); then
		t=${t//web1/@WEB@}
		t=${t//web2/web1}
		t=${t//@WEB@/web2}
	fi
	printf '%s' "${t//10.0.0.2/${ADDR[$peer]}}"
}

INSTALL_CMD=$(readme_section Install | fenced sh | grep -E '^make .*install' | sed 's/ *#.*//')
need INSTALL_CMD 'a "make ... install" line in "## Install"'
STEP1=$(guide_step 1 | fenced sh)
need STEP1 "a \`\`\`sh block in step 1 (Accounts)"
STEP2=$(guide_step 2 | fenced sh)
need STEP2 "a \`\`\`sh block in step 2 (Directories and keys)"
STEP3=$(guide_step 3 | fenced sh)
need STEP3 "a \`\`\`sh block in step 3 (Sessions on tmpfs)"
PHP_INI_LINE=$(span 3 'session.save_path = ')
need PHP_INI_LINE "step 3's session.save_path line for php.ini"
CONF_PATH=$(span 4 /etc/)
need CONF_PATH "step 4's config path"
CONF_INI=$(guide_step 4 | fenced ini)
need CONF_INI "step 4's \`\`\`ini block"
CONF_PERMS=$(span 4 'chown ')
need CONF_PERMS "step 4's chown/chmod of the config"
CHECK_CONFIG=$(span 4 'sessyncd -c ')
need CHECK_CONFIG "step 4's --check-config command"
KEYSCAN=$(span 5 'ssh-keyscan ')
need KEYSCAN "step 5's ssh-keyscan command"
FINGERPRINT=$(span 5 'ssh-keygen -lf ')
need FINGERPRINT "step 5's ssh-keygen -lf of the peer's host key"
STEP6=$(guide_step 6 | fenced sh)
need STEP6 "a \`\`\`sh block in step 6 (authorized_keys)"
STEP7=$(guide_step 7 | fenced sh)
need STEP7 "a \`\`\`sh block in step 7 (install the units, systemctl)"
UNIT_USER=$(span 7 'User=')
need UNIT_USER "step 7's User= of the unit"
UNIT_GROUP=$(span 7 'Group=')
need UNIT_GROUP "step 7's Group= of the unit"
STATUS_CMD=$(span 7 'sessyncd -c ')
need STATUS_CMD "step 7's --status command"
STATUS_WHO=$(guide_step 7 | tr '\n' ' ' | grep -o '(as root[^)]*)')
need STATUS_WHO "step 7's \"(as root, ...)\" list of who may run --status"

# What the test does not run from the README but depends on: say what the
# README says, or fail here rather than test something else.
SYSTEMCTL="systemctl daemon-reload && systemctl enable --now sessyncd.socket sessyncd"
[[ $(sed -n 2p <<<"$STEP7") == "$SYSTEMCTL" ]] ||
	it_abort "step 7's second line is no longer \"$SYSTEMCTL\": the test emulates exactly that systemctl: got '$STEP7'"
UNIT_INSTALL=$(sed -n 1p <<<"$STEP7")
UNIT_FILE=/etc/systemd/system/sessyncd.service
SOCKET_FILE=/etc/systemd/system/sessyncd.socket
[[ $UNIT_INSTALL == "install -m 0644 conf/sessyncd.service conf/sessyncd.socket /etc/systemd/system/" ]] ||
	it_abort "step 7 installs the units differently now: '$UNIT_INSTALL' (the test reads $UNIT_FILE and $SOCKET_FILE)"
[[ $(grep -c '10\.0\.0\.2' <<<"$CONF_INI") == 1 && $KEYSCAN == *10.0.0.2* ]] ||
	it_abort "the guide's peer address is no longer 10.0.0.2 in step 4 and step 5"
[[ $STEP6 == *"web2.pub"* ]] || it_abort "step 6 no longer reads web2.pub"

# ---------------------------------------------------------------- nodes

# in_node I CMD...: run CMD in node I's namespaces (mount, UTS, network).
in_node() {
	local h=${HOLDER[$1]}
	shift
	nsenter --target "$h" --mount --uts --net -- "$@"
}

# in_node_exec I CMD...: exec CMD in node I (in a background job: $! is CMD's PID).
in_node_exec() {
	local h=${HOLDER[$1]}
	shift
	exec nsenter --target "$h" --mount --uts --net -- "$@"
}

# quiet CMD...: CMD without its output (for check).
quiet() { "$@" >/dev/null 2>&1; }

# node_root I: node I's / as seen from here (its /var/lib/php/sessions, ...).
node_root() { echo "/proc/${HOLDER[$1]}/root"; }

# admin I DIR SCRIPT: run SCRIPT (bash, -e) in node I as root in a login-like
# environment (root's PATH, HOME=/root, umask 022), in DIR. SCRIPT's output
# is printed as diagnostics. Returns SCRIPT's status.
admin() {
	local i=$1 dir=$2 script=$3 out rc
	out=$(in_node "$i" env -i -C "$dir" PATH="$ADMIN_PATH" HOME=/root USER=root LOGNAME=root \
		SHELL=/bin/bash LANG=C.UTF-8 bash -c 'umask 022; set -e -o pipefail; eval "$1"' _ "$script" 2>&1)
	rc=$?
	[[ -n $out ]] && sed 's/^/#     | /' <<<"$out"
	return "$rc"
}

# run_guide I DIR DESC SCRIPT: print SCRIPT as node I's root types it, run
# it with admin, and check it succeeded.
run_guide() {
	local i=$1 dir=$2 desc=$3 script=$4
	sed "s/^/#   ${NAME[$i]}# /" <<<"$script"
	check "${NAME[$i]}: $desc" admin "$i" "$dir" "$script"
}

# step I N TITLE: the header line of step N on node I.
step() { echo "# ---- ${NAME[$1]}, step $2: $3"; }

# _holder_ready PID: PID has become "sleep infinity" (ip netns exec and
# unshare have exec'd into it: its namespaces are final).
_holder_ready() {
	[[ $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) == "sleep infinity " ]]
}

# _sshd_listening I: node I's sshd listens on its address, port 22.
_sshd_listening() {
	[[ -n $(in_node "$1" ss -Hltn "sport = :22" 2>/dev/null) ]]
}

# node_create I: node I before the guide: a fresh Debian machine with PHP
# and a running sshd (its own ed25519 host key), in its own namespaces.
node_create() {
	local i=$1 d=$T/n$1 e
	mkdir -p "$d/work" "$d/sshd" "$d/var" "$d/run" "$d/usr-local" || return 1
	chmod 0755 "$d/var" "$d/run" "$d/usr-local"
	# /etc: the machine's, without its SSH host keys (this node makes its
	# own, as openssh-server's postinst does) and without password hashes.
	tar -C / --exclude='etc/ssh/ssh_host_*' -cf - etc | tar -C "$d" -xf - || return 1
	for e in shadow gshadow; do
		[[ -f $d/etc/$e ]] && awk -F: -v OFS=: '$2 ~ /^\$/ { $2 = "*" } { print }' "$d/etc/$e" >"$d/etc/$e.new" &&
			cat "$d/etc/$e.new" >"$d/etc/$e" && rm -f "$d/etc/$e.new"
	done
	# /var and /run: the top-level layout of the machine's (directories and
	# symlinks, same modes), empty, plus what php-common ships
	# (/var/lib/php/sessions, 1733) and a docroot for the test's app.
	for e in /var/* /run/lock; do
		if [[ -L $e ]]; then cp -P "$e" "$d$e"
		elif [[ -d $e ]]; then install -d -m "$(stat -c %a "$e")" -o "$(stat -c %u "$e")" -g "$(stat -c %g "$e")" "$d$e"
		fi
	done
	install -d -m 0755 "$d/var/lib/php" "$d/var/www/html" "$d/run/sshd" || return 1
	install -d -m 1733 "$d/var/lib/php/sessions" || return 1
	# ... and what nginx-common ships (its log and state directories)
	for e in /var/log/nginx /var/lib/nginx; do
		[[ -d $e ]] && install -d -m "$(stat -c %a "$e")" -o "$(stat -c %u "$e")" -g "$(stat -c %g "$e")" "$d$e"
	done
	cat >"$d/var/www/html/index.php" <<-'EOF'
		<?php
		// t_guide's application: log in, who am I, log out.
		header('Content-Type: text/plain');
		$do = $_GET['do'] ?? 'whoami';
		if ($do === 'ping') {   // is PHP there: no session
		    echo "pong\n";
		    return;
		}
		session_start();
		if ($do === 'login') {
		    $_SESSION['uid'] = 42;
		    $_SESSION['login_node'] = gethostname();
		}
		if ($do === 'logout') {
		    session_destroy();
		    echo gethostname(), ": logged out\n";
		    return;
		}
		printf("%s: uid=%s login_node=%s\n", gethostname(), $_SESSION['uid'] ?? '-', $_SESSION['login_node'] ?? '-');
	EOF
	chmod 0644 "$d/var/www/html/index.php"

	ip netns add "${NS[$i]}" || return 1
	NS_MADE+=("${NS[$i]}")
	ip netns exec "${NS[$i]}" unshare --mount --uts --propagation private -- sleep infinity \
		</dev/null >/dev/null 2>&1 &
	HOLDER[i]=$!
	it_track_pid "${HOLDER[$i]}"
	wait_until 5 _holder_ready "${HOLDER[$i]}" || return 1
	# shellcheck disable=SC2016
	in_node "$i" bash -e -c '
		hostname "$1"
		mount --bind "$2/etc" /etc
		mount --bind "$2/var" /var
		mount --bind "$2/run" /run
		mount --bind "$2/usr-local" /usr/local
		ssh-keygen -q -t ed25519 -N "" -C "root@$1" -f /etc/ssh/ssh_host_ed25519_key' _ "${NAME[$i]}" "$d" ||
		return 1

	cat >"$d/sshd/sshd_config" <<-EOF
		# ${NAME[$i]}'s sshd (t_guide): Debian's defaults, on this node's address.
		ListenAddress ${ADDR[$i]}:22
		HostKey /etc/ssh/ssh_host_ed25519_key
		PidFile /run/sshd.pid
		# No PAM here: the reason the guide's usermod -p '*' matters.
		UsePAM no
		StrictModes yes
		AuthorizedKeysFile .ssh/authorized_keys
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PermitRootLogin no
		LogLevel VERBOSE
		LoginGraceTime 10
		X11Forwarding no
		PrintMotd no
		UseDNS no
	EOF
	in_node "$i" "$IT_SSHD" -t -f "$d/sshd/sshd_config"
}

# node_net: the veth pair, one end in each node, and their addresses.
node_net() {
	ip link add eth0 netns "${NS[1]}" type veth peer name eth0 netns "${NS[2]}" || return 1
	local i
	for i in 1 2; do
		ip -n "${NS[$i]}" link set lo up &&
			ip -n "${NS[$i]}" addr add "${ADDR[$i]}/24" dev eth0 &&
			ip -n "${NS[$i]}" link set eth0 up || return 1
	done
}

# node_sshd I: start node I's sshd (-D: our child, stopped by PID).
node_sshd() {
	local i=$1 d=$T/n$1
	in_node_exec "$i" "$IT_SSHD" -D -f "$d/sshd/sshd_config" -E "$d/sshd/log" </dev/null &
	echo "$!" >"$d/sshd/pid"
	_it_wait_start "$!" _sshd_listening "$i"
}

# ---------------------------------------------------------------- the unit

# unit_get I KEY: the values of KEY= in node I's installed unit's [Service]
# section, one a line (systemd: the last one wins, Exec*= add up).
unit_get() {
	awk -v k="$2" '/^\[/ { s = ($0 == "[Service]"); next }
		s && index($0, k "=") == 1 { print substr($0, length(k) + 2) }' "$T/n$1$UNIT_FILE"
}
unit_one() { unit_get "$@" | tail -n 1; }

# The unit's file-system sandbox, run as root in a mount namespace of the
# daemon's own, before it drops to User=: ProtectSystem=strict (every mount
# read-only but /proc, /sys and /dev, and the writable paths: ReadWritePaths=,
# StateDirectory=, RuntimeDirectory=, each bind-mounted on itself first),
# PrivateTmp=yes (its own /tmp and /var/tmp). Arguments: STRICT(yes|no)
# PRIVATETMP(yes|no) N PATH1..PATHN CMD...
UNIT_SANDBOX='set -e -o pipefail
strict=$1 ptmp=$2 n=$3
shift 3
rw=("${@:1:n}")
shift "$n"
if [[ $strict == yes ]]; then
	for p in "${rw[@]}"; do mount --bind "$p" "$p"; done
	while read -r m; do
		m=$(printf "%b" "$m")
		case $m in /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;; esac
		for p in "${rw[@]}"; do [[ $m == "$p" ]] && continue 2; done
		# a mount point hidden under another mount cannot be reached: skip it
		mount -o remount,bind,ro "$m" 2>/dev/null || true
	done < <(findmnt -rno TARGET)
fi
if [[ $ptmp == yes ]]; then
	mount -t tmpfs -o mode=1777 tmpfs /tmp
	mount -t tmpfs -o mode=1777 tmpfs /var/tmp
fi
exec "$@"'

# as_unit I CMD...: exec CMD (so call it in a subshell or in the
# background: the PID is CMD's) in node I the way systemd runs the unit's
# commands: in the unit's sandbox (UNIT_SANDBOX), as User= with Group= and
# the supplementary groups systemd gives (initgroups(User, Group's gid): the
# groups that list User, and Group), UMask=, NoNewPrivileges=, cwd /, the
# environment systemd sets for User= (and the LISTEN_ variables of a socket
# activation: sd_listen_fds(3)).
as_unit() {
	local i=$1 user group groups home shell umask strict ptmp nnp=() rw=() p
	shift
	user=$(unit_one "$i" User) group=$(unit_one "$i" Group) umask=$(unit_one "$i" UMask)
	[[ $(unit_one "$i" NoNewPrivileges) == yes ]] && nnp=(--no-new-privs)
	case $(unit_one "$i" ProtectSystem) in
	strict) strict=yes ;;
	"" | no) strict=no ;;
	*) echo "# ProtectSystem=$(unit_one "$i" ProtectSystem): not emulated by t_guide" >&2; exit 1 ;;
	esac
	ptmp=$(unit_one "$i" PrivateTmp)
	for p in $(unit_get "$i" ReadWritePaths); do
		[[ $p == /* ]] || { echo "# ReadWritePaths=$p: not emulated by t_guide" >&2; exit 1; }
		rw+=("$p")
	done
	for p in $(unit_get "$i" StateDirectory); do rw+=("/var/lib/$p"); done
	for p in $(unit_get "$i" RuntimeDirectory); do rw+=("/run/$p"); done
	groups=$(in_node "$i" python3 -c '
import grp, os, sys
print(",".join(str(g) for g in os.getgrouplist(sys.argv[1], grp.getgrnam(sys.argv[2]).gr_gid)))' \
		"$user" "$group") || exit 1
	IFS=: read -r _ _ _ _ _ home shell < <(in_node "$i" getent passwd "$user")
	umask "${umask:-0022}"
	exec nsenter --target "${HOLDER[$i]}" --mount --uts --net -- \
		unshare --mount --propagation private -- \
		bash -c "$UNIT_SANDBOX" _ "$strict" "${ptmp:-no}" "${#rw[@]}" "${rw[@]}" \
		setpriv --reuid="$user" --regid="$group" --groups="$groups" "${nnp[@]}" -- \
		env -i -C / PATH="$ADMIN_PATH" HOME="$home" USER="$user" LOGNAME="$user" SHELL="$shell" \
		${LISTEN_FDS:+LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID} "$@"
}

# unit_words I KEY: KEY's command as words, or fail on what this emulation
# does not do (a prefix such as "-" or "+", quotes, variables).
unit_words() {
	local v
	v=$(unit_one "$1" "$2")
	[[ -n $v && $v != [-+@!:]* && $v != *[\"\'\$\\]* ]] || {
		echo "# $2=$v: not a plain command line, which t_guide's emulation of systemd does not run" >&2
		return 1
	}
	echo "$v"
}

# _daemon_answers I: node I's daemon answers --status as root.
_daemon_answers() {
	# shellcheck disable=SC2086  # the README's command, split into words
	in_node "$1" env PATH="$ADMIN_PATH" timeout 5 $STATUS_CMD >/dev/null 2>&1
}

# unit_run I: what systemd does to start the service on node I (Type=simple),
# in this process, which ends as the daemon: RuntimeDirectory=,
# ExecStartPre= (without the LISTEN_ variables, as systemd gives them to
# ExecStart= only), then exec ExecStart=. Run by the socket's launcher, whose
# child it is (LISTEN_PID: the exec's keep it). Lines go to daemon.log.
unit_run() {
	local i=$1 d=$T/n$1 user group rtd rtm pre start
	exec >>"$d/daemon.log" 2>&1 </dev/null
	user=$(unit_one "$i" User) group=$(unit_one "$i" Group)
	rtd=$(unit_one "$i" RuntimeDirectory) rtm=$(unit_one "$i" RuntimeDirectoryMode)
	[[ $(unit_one "$i" Type) == simple && -n $user && -n $group && $rtd != */* ]] || exit 1
	# RuntimeDirectory=: made (or made so) at each start, owned by User:Group, RuntimeDirectoryMode=.
	if [[ -n $rtd ]]; then
		install -d -o "$user" -g "$group" -m "${rtm:-0755}" "/run/$rtd" || exit 1
	fi
	while read -r pre; do
		[[ -n $pre ]] || continue
		[[ $pre != [-+@!:]* && $pre != *[\"\'\$\\]* ]] || exit 1
		# shellcheck disable=SC2086  # a plain command line, checked above
		(unset LISTEN_FDS LISTEN_PID; as_unit "$i" $pre) || { echo "# ExecStartPre failed: $pre"; exit 1; }
	done < <(unit_get "$i" ExecStartPre)
	start=$(unit_words "$i" ExecStart) || exit 1
	echo "=== it: $(date +%T.%3N) unit start ${NAME[$i]} (LISTEN_FDS=${LISTEN_FDS:-}): $start"
	# shellcheck disable=SC2086
	as_unit "$i" $start
}

# sock_one I KEY: KEY= of node I's installed socket unit's [Socket] section.
sock_one() {
	awk -v k="$2" '/^\[/ { s = ($0 == "[Socket]"); next }
		s && index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }' "$T/n$1$SOCKET_FILE"
}

# unit_start I: what `systemctl enable --now sessyncd.socket sessyncd` does on
# node I: the socket unit listens (tests/integration/sockact.py, as root,
# with its SocketUser=, SocketGroup=, SocketMode=, DirectoryMode=; Accept=no),
# and the service starts now with it (unit_run), and again on a connection
# whenever it is down. The daemon's PID goes to daemon.pid at each start.
unit_start() {
	local i=$1 d=$T/n$1 listen
	listen=$(sock_one "$i" ListenStream)
	[[ $listen == /* && $(sock_one "$i" Accept) == no ]] || return 1
	{
		# shellcheck disable=SC2090  # declare -p prints it quoted, for bash to read back
		declare -p T HOLDER NAME UNIT_FILE ADMIN_PATH UNIT_SANDBOX
		declare -f in_node unit_get unit_one unit_words as_unit unit_run
		echo "unit_run $i"
	} >"$d/unit_run.sh"
	echo "#   ${NAME[$i]} (systemd, sessyncd.socket): listen on $listen, $(sock_one "$i" SocketUser):$(sock_one "$i" SocketGroup) $(sock_one "$i" SocketMode)"
	echo "#   ${NAME[$i]} (systemd, sessyncd.service, as $(unit_one "$i" User):$(unit_one "$i" Group)): $(unit_get "$i" ExecStartPre | paste -sd';'); $(unit_one "$i" ExecStart)"
	( in_node_exec "$i" python3 "$IT_LIB_DIR/sockact.py" --now --pidfile "$d/daemon.pid" \
		--socket-user "$(sock_one "$i" SocketUser)" --socket-group "$(sock_one "$i" SocketGroup)" \
		--socket-mode "$(sock_one "$i" SocketMode)" --directory-mode "$(sock_one "$i" DirectoryMode)" \
		"$listen" -- /bin/bash "$d/unit_run.sh" ) </dev/null >>"$d/daemon.log" 2>&1 &
	SOCKET_PID[i]=$!
	it_track_pid "$!"
	wait_until "$IT_START_TIMEOUT" test -s "$d/daemon.pid" && _it_wait_start "$(daemon_pid "$i")" _daemon_answers "$i"
}
SOCKET_PID=("" "" "")

# ---------------------------------------------------------------- cleanup

guide_cleanup() {
	local rc=$? i n
	trap - EXIT
	for i in 1 2; do daemon_stop "$i" >/dev/null 2>&1; done
	for i in 1 2; do sshd_stop "$i" >/dev/null 2>&1; done
	for ((n = ${#IT_EXTRA_PIDS[@]} - 1; n >= 0; n--)); do   # php, then the namespace holders
		_it_stop_tree "${IT_EXTRA_PIDS[$n]}" TERM any
	done
	IT_EXTRA_PIDS=()
	for n in "${NS_MADE[@]}"; do ip netns delete "$n" 2>/dev/null; done
	if ((rc != 0 && rc != 77)) || ((IT_FAILS)); then
		for i in 1 2; do
			for f in "$T/n$i/web.log" "$T/n$i/var/log/$FPM_UNIT.log" "$T/n$i/var/log/nginx/error.log"; do
				[[ -s $f ]] || continue
				echo "# ---- tail $f"
				tail -n "${IT_LOG_TAIL:-20}" "$f" | sed 's/^/#   /'
			done
		done
	fi
	(exit "$rc")
	it_cleanup
}
trap guide_cleanup EXIT

# ---------------------------------------------------------------- the machine, before

host_sum() { cat /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/fstab 2>/dev/null | sha256sum; }
host_before=$(host_sum)
host_paths() {
	local p
	for p in /etc/sessync /etc/systemd/system/sessyncd.service /etc/systemd/system/sessyncd.socket /var/lib/sessync /var/lib/sessync-ssh /run/sessync \
		/usr/local/sbin/sessyncd /etc/systemd/system/"$FPM_UNIT".service.d /etc/systemd/system/nginx.service.d \
		/etc/nginx/sites-enabled/app; do
		[[ -e $p ]] && echo "$p"
	done
}
host_paths_before=$(host_paths)
host_mounts_before=$(findmnt -rn -o TARGET /var/lib/php/sessions)

# ---------------------------------------------------------------- two fresh machines

it_note "nodes: web1 ${ADDR[1]} (netns ${NS[1]}), web2 ${ADDR[2]} (netns ${NS[2]})"
for i in 1 2; do
	node_create "$i" || it_abort "${NAME[$i]}: namespaces, private /etc /var /run /usr/local and sshd config"
done
IT_NODES=2   # from here on it_cleanup reports $T/nI/daemon.log and sshd/log on failure
node_net || it_abort "veth pair ${ADDR[1]} <-> ${ADDR[2]}"
for i in 1 2; do
	node_sshd "$i" || it_abort "${NAME[$i]}: sshd on ${ADDR[$i]}:22"
done
ok "web1 and web2: own network and mount namespaces, sshd on ${ADDR[1]}:22 and ${ADDR[2]}:22"
check "web1 reaches web2 over the veth pair" in_node 1 bash -c "exec 3<>/dev/tcp/${ADDR[2]}/22"

# ---------------------------------------------------------------- Install
for i in 1 2; do
	echo "# ---- ${NAME[$i]}: Install (README \"## Install\", in $REPO)"
	run_guide "$i" "$REPO" "Install: $INSTALL_CMD" "$INSTALL_CMD"
done

# ---------------------------------------------------------------- steps 1-4
for i in 1 2; do
	w=$T/n$i/work
	step "$i" 1 "Accounts"
	run_guide "$i" "$w" "step 1 (useradd sessync, usermod -p '*')" "$(subst "$i" "$STEP1")"
	check "${NAME[$i]}: sessync is an account of the node (its /etc/passwd), not of the machine" \
		quiet in_node "$i" getent passwd sessync

	step "$i" 2 "Directories and keys"
	run_guide "$i" "$w" "step 2 (/etc/sessync, /var/lib/sessync, the SSH key)" "$(subst "$i" "$STEP2")"

	step "$i" 3 "Sessions on tmpfs, owned by PHP's user"
	run_guide "$i" "$w" "step 3 (fstab line, mount /var/lib/php/sessions)" "$(subst "$i" "$STEP3")"
	assert_eq "$(in_node "$i" stat -c '%a %U:%G' /var/lib/php/sessions)" "700 www-data:www-data" \
		"${NAME[$i]}: /var/lib/php/sessions is the tmpfs, 0700 www-data"
	# php.ini: the CLI's and php-fpm's (step 8 serves PHP with php-fpm)
	ini=$(in_node "$i" php --ini | awk -F': *' '/^Loaded Configuration File/ { print $2 }')
	run_guide "$i" "$w" "step 3 (php.ini: $PHP_INI_LINE)" "echo '$PHP_INI_LINE' >> $ini"
	ini=$(in_node "$i" "$FPM_BIN" -i | awk -F' => ' '/^Loaded Configuration File/ { print $2 }')
	run_guide "$i" "$w" "step 3 ($FPM_UNIT's php.ini: $PHP_INI_LINE)" "echo '$PHP_INI_LINE' >> $ini"
	assert_eq "$(in_node "$i" setpriv --reuid=www-data --regid=www-data --init-groups \
		php -r 'echo ini_get("session.save_path");')" "/var/lib/php/sessions" \
		"${NAME[$i]}: PHP (www-data) saves sessions in /var/lib/php/sessions"
	assert_eq "$(in_node "$i" "$FPM_BIN" -i | awk -F' => ' '$1 == "session.save_path" { print $2 }')" \
		"/var/lib/php/sessions" "${NAME[$i]}: so does $FPM_UNIT"

	step "$i" 4 "Config $CONF_PATH"
	ini_text=$(subst "$i" "$CONF_INI")
	sed "s/^/#   ${NAME[$i]}# | /" <<<"$ini_text"
	check "${NAME[$i]}: step 4 ($CONF_PATH: the README's [node] and [peer] block)" \
		admin "$i" "$w" "cat > $CONF_PATH <<'EOF'
$ini_text
EOF"
	run_guide "$i" "$w" "step 4 ($CONF_PERMS)" "$CONF_PERMS"
	run_guide "$i" "$w" "step 4 ($CHECK_CONFIG)" "$CHECK_CONFIG"
done

# ---------------------------------------------------------------- steps 5-6
for i in 1 2; do
	p=$((3 - i))
	step "$i" 5 "known_hosts"
	run_guide "$i" "$T/n$i/work" "step 5 (ssh-keyscan ${NAME[$p]})" "$(subst "$i" "$KEYSCAN")"
	echo "#   ${NAME[$p]}# $FINGERPRINT"
	want=$(in_node "$p" "${FINGERPRINT%% *}" ${FINGERPRINT#* } | awk '{ print $2 }')
	got=$(in_node "$i" ssh-keygen -lf /etc/sessync/known_hosts | awk '{ print $2 }')
	if [[ -n $want && $got == "$want" ]]; then
		ok "${NAME[$i]}: known_hosts holds ${NAME[$p]}'s host key ($want)"
	else
		fail "${NAME[$i]}: known_hosts holds ${NAME[$p]}'s host key"
		printf '#   known_hosts: %q, %s: %q\n' "$got" "${NAME[$p]}" "$want"
	fi
done
for i in 1 2; do
	p=$((3 - i))
	step "$i" 6 "authorized_keys of sessync"
	# "web2.pub: a copy of web2's /etc/sessync/id_ed25519.pub"
	cp "$(node_root "$p")/etc/sessync/id_ed25519.pub" "$T/n$i/work/${NAME[$p]}.pub"
	echo "#   (${NAME[$p]}.pub: a copy of ${NAME[$p]}'s /etc/sessync/id_ed25519.pub)"
	run_guide "$i" "$T/n$i/work" "step 6 (authorized_keys line for ${NAME[$p]})" "$(subst "$i" "$STEP6")"
	assert_eq "$(cat "$(node_root "$i")/var/lib/sessync-ssh/.ssh/authorized_keys")" \
		"command=\"/usr/local/sbin/sessyncd -c /etc/sessync/sessync.conf --serve --from ${NAME[$p]}\",restrict $(cat "$T/n$i/work/${NAME[$p]}.pub")" \
		"${NAME[$i]}: authorized_keys binds ${NAME[$p]}'s key to --from ${NAME[$p]}"
done
check "conf/authorized_keys has the line step 6 writes (for web2)" grep -qF -- \
	"$(guide_step 6 | fenced sh | grep -o 'command="[^"]*",restrict')" "$REPO/conf/authorized_keys"

# ---------------------------------------------------------------- step 7
for i in 1 2; do
	step "$i" 7 "Start it"
	run_guide "$i" "$REPO" "step 7 ($UNIT_INSTALL)" "$UNIT_INSTALL"
	echo "#   ${NAME[$i]}# $SYSTEMCTL   (emulated: no systemd here)"
	assert_eq "User=$(unit_one "$i" User) Group=$(unit_one "$i" Group)" "$UNIT_USER $UNIT_GROUP" \
		"${NAME[$i]}: the installed unit has the README's $UNIT_USER and $UNIT_GROUP"
	assert_eq "$(in_node "$i" stat -c '%U:%G %a' /var/lib/sessync)" \
		"$(unit_one "$i" User):$(unit_one "$i" Group) $(printf %o "$((8#$(unit_one "$i" StateDirectoryMode)))")" \
		"${NAME[$i]}: step 2's /var/lib/sessync is what the unit's StateDirectory= makes it"
	check "${NAME[$i]}: sessyncd started as the units start it (the socket, then ExecStartPre, ExecStart)" unit_start "$i"
	check "${NAME[$i]}: ... with the socket systemd holds" grep -q 'passed by systemd (socket activation)' "$T/n$i/daemon.log"
done

# connected P ...: node P's --status --json (as root) shows every peer connected.
connected() {
	in_node "$1" env PATH="$ADMIN_PATH" timeout 5 ${STATUS_CMD} --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["peers"] and all(p["connected"] is True for p in d["peers"]) else 1)'
}
check "web1's --status --json shows web2 connected" wait_until "$WAIT" connected 1
check "web2's --status --json shows web1 connected" wait_until "$WAIT" connected 2

for i in 1 2; do
	pid=$(daemon_pid "$i")
	assert_eq "$(awk '/^(Uid|Gid|Groups):/ { $1 = ""; print }' "/proc/$pid/status" 2>/dev/null | paste -sd'|')" \
		"$(in_node "$i" bash -c 'u=$(id -u www-data) g=$(getent group sessync | cut -d: -f3)
			echo " $u $u $u $u| $g $g $g $g| $g"')" \
		"${NAME[$i]}: the daemon runs as www-data, group sessync, supplementary groups: sessync only"
	assert_eq "$(awk '{ m[$5] = substr($6, 1, 2) } END { print m["/"], m["/etc"], m["/var/lib/php/sessions"], m["/var/lib/sessync"], m["/run/sessync"], m["/tmp"] }' "/proc/$pid/mountinfo")" \
		"ro ro rw rw rw rw" "${NAME[$i]}: the daemon is in the unit's sandbox: / and /etc read-only; sessions, state, /run/sessync, a private /tmp writable"
	assert_eq "$(in_node "$i" stat -c '%U:%G %a' /run/sessync /run/sessync/sessync.sock | paste -sd' ')" \
		"www-data:sessync 750 www-data:sessync 660" "${NAME[$i]}: /run/sessync 0750 and its socket 0660, group sessync"
done

# ---------------------------------------------------------------- --status, as whom
echo "# ---- step 7: $STATUS_CMD ${STATUS_WHO}"
status_as() {  # I SETPRIV-ARGS...: --status on node I as that user; prints it
	local i=$1
	shift
	in_node "$i" setpriv "$@" -- env -i PATH="$ADMIN_PATH" timeout 5 ${STATUS_CMD} 2>&1
}
# shows_connected DESC OUT: check that --status output OUT has web2 connected.
shows_connected() {
	if grep -Eq '^web2 +connected' <<<"$2"; then ok "$1"; else fail "$1"; sed 's/^/#   | /' <<<"$2"; fi
}
out=$(in_node 1 env -i PATH="$ADMIN_PATH" timeout 5 ${STATUS_CMD} 2>&1)
sed 's/^/#   web1# | /' <<<"$out"
shows_connected "web1: --status as root shows web2 connected" "$out"
shows_connected "web1: --status as sessync (its primary group sessync) shows web2 connected" \
	"$(status_as 1 --reuid=sessync --regid=sessync --init-groups)"
echo "#   web1# useradd --no-create-home --shell /usr/sbin/nologin --groups sessync alice   (not in the guide)"
in_node 1 useradd --no-create-home --shell /usr/sbin/nologin --groups sessync alice
shows_connected "web1: --status as alice (supplementary group sessync) shows web2 connected" \
	"$(status_as 1 --reuid=alice --regid=alice --init-groups)"
# Whom the README lists (up to a ";" that may explain who not): www-data too?
if [[ ${STATUS_WHO%%;*} == *www-data* ]]; then
	shows_connected "web1: --status as www-data (with its own groups, as sudo -u www-data) shows web2 connected" \
		"$(status_as 1 --reuid=www-data --regid=www-data --init-groups)"
fi
out=$(status_as 1 --reuid=nobody --regid=nogroup --init-groups)
check "web1: --status as nobody (not in sessync) is refused" not grep -Eq '^web2 +connected' <<<"$out"
sed 's/^/#   | /' <<<"$out"

# ---------------------------------------------------------------- step 8: php-fpm and nginx
# "install conf/systemd/... under /etc/systemd/system/": the drop-ins,
# then what `systemctl daemon-reload && systemctl restart` runs for each:
# the drop-in's ExecStartPre= (sessyncd --wait-ready), then the package's
# server, in the foreground (our child, stopped by PID).
DROPINS=$(guide_step 8 | spans | grep -E '^conf/systemd/[^ ]+\.service\.d/[^ ]+\.conf$')
need DROPINS "step 8's conf/systemd/*.service.d/*.conf drop-ins"
[[ $DROPINS == *"conf/systemd/$FPM_UNIT.service.d/"* && $DROPINS == *"conf/systemd/nginx.service.d/"* ]] ||
	it_abort "step 8 no longer installs drop-ins for $FPM_UNIT and nginx: got $DROPINS"
FPM_START=$(awk '/^\[/ { s = ($0 == "[Service]"); next } s && /^ExecStart=/ { sub(/^ExecStart=/, ""); print }' \
	"/lib/systemd/system/$FPM_UNIT.service" 2>/dev/null)
[[ -n $FPM_START && $FPM_START != *[\"\'\$\\]* ]] ||
	it_abort "$FPM_UNIT.service's ExecStart= is not a plain command line: '$FPM_START'"
NGINX_START="nginx -g 'daemon off;'"   # nginx.service forks (daemon on); here: our child

# dropin_pre I SERVICE: run the ExecStartPre= lines of node I's installed
# drop-ins for SERVICE as root (the services' own user), as systemd would.
dropin_pre() {
	local i=$1 f pre
	for f in "$(node_root "$i")/etc/systemd/system/$2.service.d"/*.conf; do
		[[ -f $f ]] || return 1
		while read -r pre; do
			[[ $pre != [-+@!:]* && $pre != *[\"\'\$\\]* ]] || return 1
			echo "#   ${NAME[$i]} (systemd, $2, ExecStartPre): $pre"
			# shellcheck disable=SC2086  # a plain command line, checked above
			in_node "$i" env -i -C / PATH="$ADMIN_PATH" $pre </dev/null >>"$T/n$i/web.log" 2>&1 || return 1
		done < <(awk '/^\[/ { s = ($0 == "[Service]"); next } s && /^ExecStartPre=/ { sub(/^ExecStartPre=/, ""); print }' "$f")
	done
}
_fpm_up() { [[ -S $(node_root "$1")/run/php/$FPM_UNIT.sock ]]; }
_web_up() { [[ $(in_node "$1" curl -s --max-time 2 "http://${ADDR[$1]}:$WEB_PORT/?do=ping") == pong ]]; }

echo "# ---- step 8: the web server waits for readiness: php-fpm ($FPM_UNIT, pool www as www-data) behind nginx"
for i in 1 2; do
	for p in $DROPINS; do
		run_guide "$i" "$REPO" "step 8 (install $p)" "install -D -m 0644 $p /etc/systemd/system/${p#conf/systemd/}"
	done
	# Not in the guide: nginx's site for PHP, as Debian's default site
	# shows it (commented out there), on this node's address; the default
	# site (port 80, also [::]) is taken out of this node's copy of /etc.
	echo "#   ${NAME[$i]}# (not in the guide) /etc/nginx/sites-enabled/app: ${ADDR[$i]}:$WEB_PORT, *.php to /run/php/$FPM_UNIT.sock"
	rm -f "$T/n$i/etc/nginx/sites-enabled/default"
	cat >"$T/n$i/etc/nginx/sites-enabled/app" <<-EOF
		server {
		    listen ${ADDR[$i]}:$WEB_PORT;
		    root /var/www/html;
		    index index.php;
		    location / { try_files \$uri \$uri/ =404; }
		    location ~ \.php\$ {
		        include snippets/fastcgi-php.conf;
		        fastcgi_pass unix:/run/php/$FPM_UNIT.sock;
		    }
		}
	EOF
	# /run/php: what $FPM_UNIT's tmpfiles.d line makes at boot
	in_node "$i" install -d -o www-data -g www-data -m 0755 /run/php
	echo "#   ${NAME[$i]}# systemctl daemon-reload && systemctl restart $FPM_UNIT nginx   (emulated: no systemd here)"
	check "${NAME[$i]}: $FPM_UNIT's drop-in: ExecStartPre (sessyncd --wait-ready) passes" dropin_pre "$i" "$FPM_UNIT"
	echo "#   ${NAME[$i]} (systemd, $FPM_UNIT): $FPM_START"
	# shellcheck disable=SC2086  # a plain command line, checked above
	in_node_exec "$i" env -i -C / PATH="$ADMIN_PATH" $FPM_START </dev/null >>"$T/n$i/web.log" 2>&1 &
	it_track_pid "$!"
	check "${NAME[$i]}: $FPM_UNIT listens on /run/php/$FPM_UNIT.sock" _it_wait_start "$!" _fpm_up "$i"
	check "${NAME[$i]}: nginx's drop-in: ExecStartPre (sessyncd --wait-ready) passes" dropin_pre "$i" nginx
	echo "#   ${NAME[$i]} (systemd, nginx, in the foreground): $NGINX_START"
	in_node_exec "$i" env -i -C / PATH="$ADMIN_PATH" nginx -g 'daemon off;' </dev/null >>"$T/n$i/web.log" 2>&1 &
	it_track_pid "$!"
	check "${NAME[$i]}: nginx -> php-fpm answers on ${ADDR[$i]}:$WEB_PORT" _it_wait_start "$!" _web_up "$i"
	assert_eq "$(ps -o user= --ppid "$(cat "$(node_root "$i")/run/php/$FPM_UNIT.pid" 2>/dev/null || echo 0)" | sort -u | paste -sd' ')" \
		"www-data" "${NAME[$i]}: php-fpm's workers (pool www) run as www-data"
done

# web I QUERY [COOKIE]: one request to node I's PHP, from inside node I.
web() {
	in_node "$1" curl -sS --max-time 10 ${3:+-b "PHPSESSID=$3"} -D "$T/headers" "http://${ADDR[$1]}:$WEB_PORT/?$2"
}
sess() { echo "$(node_root "$1")/var/lib/php/sessions/sess_$2"; }

out=$(web 1 do=login)
it_note "web1 GET /?do=login -> $out"
sid=$(sed -n 's/^[Ss]et-[Cc]ookie: PHPSESSID=\([^;]*\).*/\1/p' "$T/headers" | tr -d '\r' | tail -n 1)
assert_eq "$out" "web1: uid=42 login_node=web1" "web1: PHP logs the user in (uid 42)"
check "web1: PHP set a session cookie" test -n "$sid"
sid=${sid:-none}
assert_eq "$(stat -c '%U %a' "$(sess 1 "$sid")" 2>&1)" "www-data 600" "web1: PHP wrote sess_<id>, www-data 0600"
check "web2: the session arrives, bytes and mtime equal" wait_until "$WAIT" files_equal "$(sess 1 "$sid")" "$(sess 2 "$sid")"
assert_eq "$(stat -c '%U %a' "$(sess 2 "$sid")" 2>&1)" "www-data 600" "web2: the replica is PHP's: www-data 0600"
out=$(web 2 do=whoami "$sid")
it_note "web2 GET /?do=whoami (same cookie) -> $out"
assert_eq "$out" "web2: uid=42 login_node=web1" "web2: PHP (www-data) reads the session web1 wrote"
out=$(web 2 do=logout "$sid")
it_note "web2 GET /?do=logout -> $out"
assert_eq "$out" "web2: logged out" "web2: PHP session_destroy()"
check "web2: sess_<id> is gone" not test -e "$(sess 2 "$sid")"
check "web1: the logout arrives (sess_<id> gone)" wait_until "$WAIT" not test -e "$(sess 1 "$sid")"
out=$(web 1 do=whoami "$sid")
it_note "web1 GET /?do=whoami (same cookie) -> $out"
assert_eq "$out" "web1: uid=- login_node=-" "web1: PHP starts a fresh, empty session for that id"

# ---------------------------------------------------------------- what the layout closes
echo "# ---- the layout: only PHP's own files travel, the key and config are not PHP's to read"
planted=$(sess 1 planted0123456789abcdef)
printf 'uid|i:1;' >"$planted"   # root's file, not PHP's
check "web1: PHP creates a second session" quiet web 1 do=login
sid2=$(sed -n 's/^[Ss]et-[Cc]ookie: PHPSESSID=\([^;]*\).*/\1/p' "$T/headers" | tr -d '\r' | tail -n 1)
check "web2: that session arrives" wait_until "$WAIT" files_equal "$(sess 1 "${sid2:-none}")" "$(sess 2 "${sid2:-none}")"
check "web2: the file root put in web1's session dir (not PHP's) did not travel" not test -e "$(sess 2 planted0123456789abcdef)"
for f in /etc/sessync/sessync.conf /etc/sessync/id_ed25519; do
	check "web1: PHP (www-data, its own groups) cannot read $f" not in_node 1 setpriv --reuid=www-data --regid=www-data \
		--init-groups php -r 'exit(@file_get_contents($argv[1]) === false ? 1 : 0);' "$f"
done
in_node 1 setpriv --reuid=sessync --regid=sessync --init-groups -- env -i PATH="$ADMIN_PATH" \
	timeout 5 sessyncd -c "$CONF_PATH" --serve </dev/null >"$T/n1/serve.log" 2>&1
assert_eq "$?" 2 "web1: --serve without --from (as sessync) is refused with exit 2, as step 6 says"
sed 's/^/#   | /' "$T/n1/serve.log"

# ---------------------------------------------------------------- maintenance: a drain into a stopped daemon
# "Run it", Maintenance: --full-sync on web1 exits 0 even while web2's daemon
# is stopped: web2's sessyncd.socket starts it for the drain, which reaches it
# through sshd as the account sessync (a --serve that could not apply it).
echo "# ---- Run it, Maintenance: --full-sync on web1 while the daemons are stopped (their sockets stay)"
# daemon_term I: `systemctl stop sessyncd` on node I: SIGTERM to the daemon (the
# launcher's child, not ours: daemon_stop would not touch it); it exits 0.
daemon_term() {
	local pid
	pid=$(daemon_pid "$1")
	[[ -n $pid ]] || return 1
	_it_stop_tree "$pid" TERM any
	rm -f "$T/n$1/daemon.pid"
	wait_until 5 grep -q "sockact.py: pid $pid ended, status 0$" "$T/n$1/daemon.log"
}
starts() { grep -c 'sockact.py: started' "$T/n$1/daemon.log"; }
for i in 1 2; do
	echo "#   ${NAME[$i]}# systemctl stop sessyncd   (emulated: SIGTERM; sessyncd.socket stays)"
	check "${NAME[$i]}: the daemon exits 0 on SIGTERM (systemctl stop)" daemon_term "$i"
done
check "web2: the socket file stays (systemd's)" in_node 2 test -S /run/sessync/sessync.sock
check "web1: PHP logs a user in while no daemon runs" quiet web 1 do=login
sid3=$(sed -n 's/^[Ss]et-[Cc]ookie: PHPSESSID=\([^;]*\).*/\1/p' "$T/headers" | tr -d '\r' | tail -n 1)
sid3=${sid3:-none}
check "web2: ... the session is not there (no daemon sent it)" not test -e "$(sess 2 "$sid3")"
starts2=$(starts 2)
# As the unit's user, in its sandbox (as root it would need php_user).
echo "#   web1 (as $(unit_one 1 User):$(unit_one 1 Group)): sessyncd -c $CONF_PATH --full-sync"
out=$(as_unit 1 timeout 60 sessyncd -c "$CONF_PATH" --full-sync 2>"$T/n1/fullsync.err")
rc=$?
sed 's/^/#   | /' <<<"$out"
assert_eq "$rc" 0 "web1: --full-sync into web2, whose daemon is stopped, exits 0"
check "web1: ... web2: ok" grep -Eq '^web2: ok, [1-9][0-9]* sent, 0 failed$' <<<"$out"
check "web2: on its exit the session is there, bytes and mtime equal" files_equal "$(sess 1 "$sid3")" "$(sess 2 "$sid3")"
check "web2: the drain's connection started its daemon (sessyncd.socket)" test "$(starts 2)" -gt "$starts2"
check "web2: nothing needed a stand-in (--serve as sessync could not run one)" \
	not grep -q 'stand-in\|only root or PHP' "$T/n1/fullsync.err" "$T/n2/daemon.log"

# ---------------------------------------------------------------- stop, and the machine after
for i in 1 2; do
	# web1's daemon may be up again: web2's, started, connected to it.
	[[ -z $(daemon_pid "$i") ]] || check "${NAME[$i]}: the daemon exits 0 on SIGTERM (systemctl stop)" daemon_term "$i"
	echo "#   ${NAME[$i]}# systemctl stop sessyncd.socket   (emulated)"
	_it_stop_tree "${SOCKET_PID[$i]}" TERM any
done

# Step 3: "Debian's own mode=1733 directory ...: sessyncd refuses it and
# prints this line." Unmounted, web1's /var/lib/php/sessions is php-common's.
echo "# ---- step 3's warning: Debian's own 1733 /var/lib/php/sessions"
FSTAB_LINE=$(grep -o "^echo '[^']*' >> /etc/fstab" <<<"$STEP3" | sed "s/^echo '//; s/' >> .*//")
need FSTAB_LINE "step 3's echo '...' >> /etc/fstab"
echo "#   web1# umount /var/lib/php/sessions"
in_node 1 umount /var/lib/php/sessions
assert_eq "$(in_node 1 stat -c '%a %U:%G' /var/lib/php/sessions)" "1733 root:root" "web1: /var/lib/php/sessions is Debian's again"
start=$(unit_words 1 ExecStart)
echo "#   web1 (systemd, as $(unit_one 1 User):$(unit_one 1 Group)): $start"
(as_unit 1 timeout 5 $start) </dev/null >"$T/n1/refused.log" 2>&1
rc=$?
out=$(cat "$T/n1/refused.log")
sed 's/^/#   | /' <<<"$out"
if ((rc != 0 && rc != 124)); then ok "web1: sessyncd refuses to start on it (exit $rc)"; else fail "web1: sessyncd refuses to start on it (exit $rc)"; fi
if guide_step 3 | tr -s ' \n' '  ' | grep -q 'refuses it and prints this line'; then
	assert_contains "$out" "$FSTAB_LINE" "web1: ... and prints step 3's fstab line"
fi

# ---------------------------------------------------------------- the machine after
assert_eq "$(host_sum)" "$host_before" "the machine's /etc/passwd, group, shadow, gshadow, fstab are unchanged"
assert_eq "$(host_paths)" "$host_paths_before" "no /etc/sessync, unit, drop-in, nginx site, /var/lib/sessync*, /run/sessync or /usr/local/sbin/sessyncd appeared on the machine"
assert_eq "$(findmnt -rn -o TARGET /var/lib/php/sessions)" "$host_mounts_before" "the machine's /var/lib/php/sessions is not mounted over"
it_finish
