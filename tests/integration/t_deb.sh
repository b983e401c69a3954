#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2001  # code for the node in single quotes; sed prefixes multi-line output
# The Debian package (README.md "Debian package"): `make deb` builds it
# lintian-clean from a copy of the source without touching the worktree;
# its contents (binary, man pages, the unit, the conffile, the examples, all
# naming /usr/sbin); then its maintainer scripts, run by the machine's own
# dpkg: install, reinstall, remove, purge, install again.
#
# dpkg runs in a private mount namespace (and UTS: hostname web1) in which
# /etc, /usr and /var are overlays on the machine's own (writes land in $T;
# the machine's files, its dpkg database included, stay as they were) and
# /run is an empty tmpfs, so neither the machine's systemd nor its daemons
# are reached: a postinst that calls systemctl sees no systemd running, as
# in a chroot. The man-db trigger is turned off there (its auto-update flag
# removed in the overlay) to keep the test fast.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

it_init t_deb
if [[ $(id -u) != 0 ]]; then
	echo "# SKIP t_deb: needs root (mount namespace, overlays, dpkg -i in it)"
	exit 77
fi
for c in dpkg-buildpackage dh lintian dpkg-deb unshare nsenter setpriv; do
	command -v "$c" >/dev/null || { echo "# SKIP t_deb: $c not installed (tests/deps)"; exit 77; }
done

VERSION=$(cat "$REPO/VERSION")
ARCH=$(dpkg --print-architecture)
DEB_DIR=$T/build/deb
DEB=$DEB_DIR/sessync_${VERSION}_$ARCH.deb
START=$(date +%s)

# The machine before: what dpkg in the namespace must not change here.
host_sum() { cat /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/dpkg/statoverride 2>/dev/null | sha256sum; }
host_paths() {
	local p
	for p in /etc/sessync /lib/systemd/system/sessyncd.service /usr/lib/systemd/system/sessyncd.service \
		/lib/systemd/system/sessyncd.socket /usr/lib/systemd/system/sessyncd.socket \
		/usr/sbin/sessyncd /var/lib/sessync /var/lib/sessync-ssh /usr/share/man/man8/sessyncd.8.gz; do
		[[ -e $p ]] && echo "$p"
	done
	dpkg-query -W -f='${Status}\n' sessync 2>/dev/null
}
host_before=$(host_sum)
host_paths_before=$(host_paths)
git_state() { git -C "$REPO" status --porcelain --untracked-files=all 2>/dev/null; }
git_before=$(git_state)

# ---------------------------------------------------------------- make deb
echo "# ---- make deb BUILD=$T/build"
make -C "$REPO" --no-print-directory deb BUILD="$T/build" >"$T/deb.out" 2>&1
rc=$?
assert_eq "$rc" 0 "make deb builds the package and lintian passes it (exit 0)"
((rc == 0)) || { tail -n 40 "$T/deb.out" | sed 's/^/#   | /'; it_abort "no package to check"; }
echo "# measured: make deb (dpkg-buildpackage + lintian) $(($(date +%s) - START)) s"
lint=$(sed -n '/^lintian /,/^-rw/p' "$T/deb.out" | grep -E '^[EWIPXO]: ')
[[ -n $lint ]] && sed 's/^/#   lintian: /' <<<"$lint"
assert_eq "$(grep -E '^[EW]: ' <<<"$lint")" "" "lintian: no error and no warning"
assert_eq "$(grep -E '^[IPX]: ' <<<"$lint")" "" "lintian: no info, pedantic or experimental tag (each one explained in an override)"
check "the package is $DEB" test -f "$DEB"
assert_eq "$(git_state)" "$git_before" "the worktree is as it was (the build ran in a copy under BUILD)"

# ---------------------------------------------------------------- contents
echo "# ---- what the package holds"
assert_eq "$(dpkg-deb -f "$DEB" Package Version Section Priority | tr '\n' ' ')" \
	"Package: sessync Version: $VERSION Section: net Priority: optional " "control: sessync $VERSION (VERSION), net, optional"
depends=$(dpkg-deb -f "$DEB" Depends)
for d in adduser libc6 libinih1 librsync2 libssh2-1 libxxhash0; do
	check "Depends names $d (shlibs, or the postinst's adduser)" grep -Eq "(^|, )$d( |,|$)" <<<"$depends"
done
assert_contains "$(dpkg-deb -f "$DEB" Recommends)" openssh-server "Recommends: openssh-server (the receiving side)"
listing=$(dpkg-deb -c "$DEB")
has() { awk -v p="$2" '$NF == p { print $1 }' <<<"$listing" | grep -qx -- "$1"; }
check "/usr/sbin/sessyncd, 0755" has -rwxr-xr-x ./usr/sbin/sessyncd
check "man page sessyncd(8)" has -rw-r--r-- ./usr/share/man/man8/sessyncd.8.gz
check "man page sessync.conf(5)" has -rw-r--r-- ./usr/share/man/man5/sessync.conf.5.gz
check "the unit /lib/systemd/system/sessyncd.service" has -rw-r--r-- ./lib/systemd/system/sessyncd.service
check "the socket unit /lib/systemd/system/sessyncd.socket" has -rw-r--r-- ./lib/systemd/system/sessyncd.socket
check "the config /etc/sessync/sessync.conf" has -rw-r--r-- ./etc/sessync/sessync.conf
for e in authorized_keys haproxy-sessync.cfg systemd/php8.2-fpm.service.d/sessync.conf systemd/nginx.service.d/sessync.conf; do
	check "example $e under /usr/share/doc/sessync/examples" has -rw-r--r-- "./usr/share/doc/sessync/examples/$e"
done
check "no file outside /etc, /lib/systemd, /usr/sbin, /usr/share" not grep -Evq ' \./(|etc/|etc/sessync/.*|lib/|lib/systemd/.*|usr/|usr/sbin/.*|usr/share/.*)$' <<<"$listing"
mkdir -p "$T/x" && dpkg-deb -R "$DEB" "$T/x"
assert_eq "$(cat "$T/x/DEBIAN/conffiles")" /etc/sessync/sessync.conf "DEBIAN/conffiles: /etc/sessync/sessync.conf only"
for s in postinst postrm prerm; do
	check "maintainer script $s: there, executable, sh -n clean" bash -c 'test -x "$1" && sh -n "$1"' _ "$T/x/DEBIAN/$s"
done
check "no preinst (nothing to do before unpacking)" not test -e "$T/x/DEBIAN/preinst"
assert_eq "$(grep -rl /usr/local "$T/x/etc" "$T/x/lib" "$T/x/usr/share/doc")" "" "nothing in the package names /usr/local (make install's default)"
assert_eq "$(sed -n '/^\[Unit\]/,$p' "$T/x/lib/systemd/system/sessyncd.service")" \
	"$(sed -n '/^\[Unit\]/,$p' "$REPO/conf/sessyncd.service" | sed 's|/usr/local/sbin/|/usr/sbin/|g')" \
	"the unit is conf/sessyncd.service with /usr/sbin/sessyncd"
assert_eq "$(sed -n '/^\[Unit\]/,$p' "$T/x/lib/systemd/system/sessyncd.socket")" \
	"$(sed -n '/^\[Unit\]/,$p' "$REPO/conf/sessyncd.socket")" "the socket unit is conf/sessyncd.socket"
assert_eq "$(grep -v '^#' "$T/x/etc/sessync/sessync.conf")" "$(grep -v '^#' "$REPO/conf/sessync.conf")" \
	"the conffile is conf/sessync.conf (comments aside)"
out=$("$T/x/usr/sbin/sessyncd" --version 2>&1)
check "the packaged binary runs: --version says $VERSION ($out)" test "${out#"sessyncd $VERSION "}" != "$out"
for m in "man8/sessyncd.8 SESSYNCD 8" "man5/sessync.conf.5 SESSYNC.CONF 5"; do
	read -r f th sec <<<"$m"
	check "$f is a man page (.TH $th $sec)" bash -c 'zcat "$1" | grep -q "^\.TH \"\?$2\"\? $3"' _ "$T/x/usr/share/man/$f.gz" "$th" "$sec"
done

# ---------------------------------------------------------------- a machine to install on
echo "# ---- dpkg in a mount namespace: /etc, /usr, /var overlays on the machine's, /run empty"
unshare --mount --uts --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
HOLDER=$!
it_track_pid "$HOLDER"
_holder_ready() { [[ $(tr '\0' ' ' <"/proc/$HOLDER/cmdline" 2>/dev/null) == "sleep infinity " ]]; }
wait_until 5 _holder_ready || it_abort "the namespace holder did not start"
in_ns() { nsenter --target "$HOLDER" --mount --uts -- "$@"; }
mkdir -p "$T/ov" && for d in etc usr var; do mkdir -p "$T/ov/$d.up" "$T/ov/$d.work"; done
in_ns bash -e -c '
	for d in etc usr var; do
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$1/$d.up,workdir=$1/$d.work" "/$d"
	done
	mount -t tmpfs -o mode=0755 tmpfs /run
	rm -f /var/lib/man-db/auto-update
	hostname web1' _ "$T/ov" || it_abort "could not make the namespace (overlayfs?)"
check "in the namespace, /etc is an overlay (not the machine's)" bash -c \
	'[[ $(nsenter --target "$1" --mount findmnt -no FSTYPE /etc) == overlay ]]' _ "$HOLDER"

# ns_dpkg DESC ARGS...: dpkg ARGS in the namespace; output kept as diagnostics.
ns_dpkg() {
	local desc=$1 out rc
	shift
	out=$(in_ns env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
		dpkg --force-confold "$@" 2>&1)
	rc=$?
	sed 's/^/#   | /' <<<"$out"
	assert_eq "$rc" 0 "$desc (exit 0)"
}
ns_stat() { in_ns stat -c '%U:%G %a' "$@" 2>&1 | paste -sd' '; }
ns_exists() { in_ns test -e "$1"; }
pw() { in_ns getent passwd sessync; }
shadow_pw() { in_ns awk -F: '$1 == "sessync" { print $2 }' /etc/shadow; }
key_fp() { in_ns ssh-keygen -lf /etc/sessync/id_ed25519.pub 2>/dev/null | awk '{ print $2 }'; }
overrides() { in_ns dpkg-statoverride --list | grep -E ' /etc/sessync(/sessync.conf)?$' | sort; }
# as USER CMD...: CMD as USER with USER's own groups.
as() { local u=$1; shift; in_ns setpriv --reuid="$u" --regid="$u" --init-groups -- "$@"; }
# quiet CMD...: CMD without its output (for check).
quiet() { "$@" >/dev/null 2>&1; }

check "before: no account sessync in the namespace" not quiet in_ns getent passwd sessync

# ---------------------------------------------------------------- install
echo "# ---- dpkg -i (a fresh install)"
ns_dpkg "dpkg -i sessync_${VERSION}_$ARCH.deb" -i "$DEB"
assert_eq "$(in_ns dpkg-query -W -f='${Status}' sessync)" "install ok installed" "dpkg: sessync install ok installed"
IFS=: read -r _ _ uid gid _ home shell <<<"$(pw)"
check "the receiving account sessync exists" test -n "${uid:-}"
uid=${uid:-0} gid=${gid:-0}
check "... a system account (uid $uid in 100..999)" test "$uid" -ge 100 -a "$uid" -le 999
assert_eq "$(in_ns getent group "$gid" | cut -d: -f1)" sessync "... its primary group is sessync (the unit's Group=)"
assert_eq "$home $shell" "/var/lib/sessync-ssh /bin/sh" "... home /var/lib/sessync-ssh and a shell for the forced command (README step 1)"
assert_eq "$(shadow_pw)" "*" "... password '*': no password, not locked (sshd without PAM refuses '!')"
assert_eq "$(ns_stat /var/lib/sessync-ssh /var/lib/sessync-ssh/.ssh)" "sessync:sessync 755 sessync:sessync 700" \
	"its home, and ~/.ssh 0700 ready for authorized_keys (README step 6)"
assert_eq "$(ns_stat /etc/sessync /etc/sessync/sessync.conf)" "root:sessync 750 root:sessync 640" \
	"/etc/sessync root:sessync 0750, the config 0640 (README steps 2 and 4)"
assert_eq "$(overrides | wc -l)" 2 "... kept by dpkg-statoverride (Policy 10.9.1), so upgrades keep them"
assert_eq "$(ns_stat /var/lib/sessync)" "www-data:sessync 700" "state dir /var/lib/sessync www-data:sessync 0700 (README step 2)"
assert_eq "$(ns_stat /etc/sessync/id_ed25519 /etc/sessync/id_ed25519.pub)" "www-data:sessync 600 www-data:sessync 644" \
	"the node key made, www-data:sessync (README step 2)"
assert_contains "$(in_ns cat /etc/sessync/id_ed25519.pub)" " sessync@web1" "... its comment names the host (sessync@web1)"
fp1=$(key_fp)
check "the unit is installed" ns_exists /lib/systemd/system/sessyncd.service
# Not enabled, so never started: deb-systemd-invoke, which the postinst
# calls where systemd runs, starts no disabled unit.
check "... and not enabled (no multi-user.target.wants link)" not ns_exists /etc/systemd/system/multi-user.target.wants/sessyncd.service
check "the socket unit is installed" ns_exists /lib/systemd/system/sessyncd.socket
check "... and not enabled (no sockets.target.wants link)" not ns_exists /etc/systemd/system/sockets.target.wants/sessyncd.socket
out=$(in_ns /usr/sbin/sessyncd --version 2>&1)
check "/usr/sbin/sessyncd runs ($out)" test "${out#"sessyncd $VERSION "}" != "$out"
check "the receiving account reads the config (group sessync)" quiet as sessync cat /etc/sessync/sessync.conf
check "PHP (www-data, its own groups) cannot read the config" not quiet as www-data cat /etc/sessync/sessync.conf
check "PHP (www-data, its own groups) cannot read the key" not quiet as www-data cat /etc/sessync/id_ed25519
check "the daemon (www-data with the unit's Group=sessync) reads the key" \
	quiet in_ns setpriv --reuid=www-data --regid=sessync --clear-groups -- cat /etc/sessync/id_ed25519
out=$(in_ns setpriv --reuid=www-data --regid=sessync --clear-groups -- /usr/sbin/sessyncd -c /etc/sessync/sessync.conf --check-config 2>&1)
assert_eq "$?" 0 "the unit's ExecStartPre (--check-config, as www-data:sessync) accepts the shipped config: $out"
out=$(as sessync /bin/sh -c '/usr/sbin/sessyncd -c /etc/sessync/sessync.conf --serve' </dev/null 2>&1)
assert_eq "$?" 2 "the forced command as sessync, without --from: refused with exit 2 (config read, rule applied)"
sed 's/^/#   | /' <<<"$out"

# ---------------------------------------------------------------- reinstall
echo "# ---- the admin edits the config; dpkg -i again (postinst configure on an installed version)"
in_ns sh -c 'echo "; edited by the admin" >>/etc/sessync/sessync.conf'
ns_dpkg "dpkg -i again" -i "$DEB"
assert_eq "$(pw | cut -d: -f3)" "$uid" "the account is the same (uid $uid)"
assert_eq "$(in_ns grep -c '^sessync:' /etc/passwd) $(in_ns grep -c '^sessync:' /etc/group)" "1 1" "one sessync in passwd, one in group"
assert_eq "$(key_fp)" "$fp1" "the key is the same one"
check "the admin's edit of the conffile is kept" in_ns grep -q '^; edited by the admin' /etc/sessync/sessync.conf
assert_eq "$(ns_stat /etc/sessync/sessync.conf)" "root:sessync 640" "... with its owner and mode"
check "the unit still not enabled" not ns_exists /etc/systemd/system/multi-user.target.wants/sessyncd.service

# ---------------------------------------------------------------- remove
echo "# ---- dpkg -r: the program goes, configuration and data stay"
in_ns sh -c 'printf "[10.0.0.2]:22 ssh-ed25519 AAAA\n" >/etc/sessync/known_hosts; echo tomb >/var/lib/sessync/tombstones'
ns_dpkg "dpkg -r sessync" -r sessync
assert_eq "$(in_ns dpkg-query -W -f='${Status}' sessync)" "deinstall ok config-files" "dpkg: sessync deinstall ok config-files"
check "/usr/sbin/sessyncd is gone" not ns_exists /usr/sbin/sessyncd
check "the unit is gone" not ns_exists /lib/systemd/system/sessyncd.service
check "the socket unit is gone" not ns_exists /lib/systemd/system/sessyncd.socket
check "the conffile stays (with the edit)" in_ns grep -q '^; edited by the admin' /etc/sessync/sessync.conf
check "the key stays" ns_exists /etc/sessync/id_ed25519
check "the state dir stays, tombstones in it" ns_exists /var/lib/sessync/tombstones
check "the account stays" quiet pw

# ---------------------------------------------------------------- purge
echo "# ---- dpkg -P: what the package and its postinst made goes; the account and the admin's files stay"
ns_dpkg "dpkg -P sessync" -P sessync
check "dpkg: sessync is not known any more" not quiet in_ns dpkg-query -W -f='${Status}' sessync
check "the conffile is gone" not ns_exists /etc/sessync/sessync.conf
check "the generated key is gone" not ns_exists /etc/sessync/id_ed25519
check "... and its .pub" not ns_exists /etc/sessync/id_ed25519.pub
check "the admin's known_hosts is kept" ns_exists /etc/sessync/known_hosts
check "the state dir is gone (tombstones included)" not ns_exists /var/lib/sessync
check "the account's home is gone (authorized_keys included)" not ns_exists /var/lib/sessync-ssh
assert_eq "$(overrides)" "" "no dpkg-statoverride left for /etc/sessync"
assert_eq "$(pw | cut -d: -f3)" "$uid" "the account sessync stays (uid $uid), as does its group"
check "... group sessync" quiet in_ns getent group sessync

# ---------------------------------------------------------------- install after purge
echo "# ---- dpkg -i after the purge: the account is there already"
ns_dpkg "dpkg -i after purge" -i "$DEB"
assert_eq "$(pw | cut -d: -f3)" "$uid" "the account is reused (uid $uid)"
assert_eq "$(ns_stat /var/lib/sessync-ssh/.ssh /var/lib/sessync /etc/sessync /etc/sessync/sessync.conf)" \
	"sessync:sessync 700 www-data:sessync 700 root:sessync 750 root:sessync 640" "home, state dir, /etc/sessync and config made again"
check "a new key is made" test -n "$(key_fp)" -a "$(key_fp)" != "$fp1"
check "the admin's known_hosts is still there" ns_exists /etc/sessync/known_hosts

# ---------------------------------------------------------------- the machine after
_it_stop_tree "$HOLDER" TERM any
assert_eq "$(host_sum)" "$host_before" "the machine's passwd, group, shadow, gshadow and statoverrides are unchanged"
assert_eq "$(host_paths)" "$host_paths_before" "no sessync file or package appeared on the machine"
assert_eq "$(git_state)" "$git_before" "the worktree is still as it was"
echo "# measured: t_deb $(($(date +%s) - START)) s"
it_finish
