#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # PHP code in single quotes; helpers called via check/wait_until
# The receiver's session tmpfs fills up. n2's session dir is a 1 MiB tmpfs;
# n1 creates sessions that total more than that (12 x 100 KB). The receiver
# reserves space with fallocate before it rewrites a file, so ENOSPC leaves
# the old file intact: nothing on n2 may be truncated or corrupt (every file
# there is byte-equal to n1's, same mtime, or absent), the sessions that were
# there before are untouched, an update that does not fit leaves the old
# version in place, n2's log names the peer and the session with "No space
# left on device", n1's status shows the error for n2, and n1 keeps
# retrying (about once a second). Once space is freed (half the big sessions
# are destroyed on n1, so their tombstones delete them on n2), everything
# converges.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_faults.sh"

it_init t_diskfull
it_require_daemon
it_require_tags

WAIT=${IT_WAIT:-20}

cluster_create 2 || it_abort "cluster_create 2"
s2=$(node_sessions 2)
# Mounted before the daemons start (n2's daemon opens the directory); the
# exit hook stops the daemons, unmounts, then lets lib.sh clean up.
if ! fault_mount_tmpfs "$s2" 1m; then
	it_note "SKIP t_diskfull: cannot mount a tmpfs on $s2 (needs root / CAP_SYS_ADMIN)"
	exit 77
fi
assert_eq "$(df -B1 --output=size "$s2" | tail -n 1 | tr -d ' ')" 1048576 "n2's session dir is a 1 MiB tmpfs"
cluster_start || it_abort "cluster did not start"
check "n1 -> n2 connected" wait_until 10 peer_connected 1 n2

# ---------------------------------------------------------------- fits
for k in 1 2 3 4 5; do
	php_session 1 "dfSmall$k" '$_SESSION["user"] = "user'"$k"'"; $_SESSION["n"] = 1;' || fail "php create dfSmall$k"
done
check_converged "5 small sessions reach n2" "$WAIT" 1 2
# Older versions n2 may legitimately still hold, by their session names.
mkdir "$T/before"
for k in 1 2 3 4 5; do cp -p -- "$(node_sess_file 1 "dfSmall$k")" "$T/before/"; done

# ---------------------------------------------------------------- fills up
mark=$(log_mark 2)
for k in $(seq -w 1 12); do
	php_session 1 "dfBig$k" '$_SESSION["blob"] = str_repeat(md5("big'"$k"'"), 3125);' || fail "php create dfBig$k"
done
total=$(du -cb "$(node_sessions 1)"/sess_dfBig* | tail -n 1 | cut -f1)
it_note "n1 created 12 big sessions, $total bytes in all"

# Logs name a session by its tag: any of the 12 big ones.
big_tags=$(for k in $(seq -w 1 12); do sid_tag "dfBig$k"; done | paste -sd'|')
# A new file meets either ENOSPC or, first, the reserve kept for PHP
# (docs/DESIGN.md "Names never seen": below 1/16 free, new sessions from
# peers are answered RETRY).
enospc_re="peer \"n1\": session ($big_tags): cannot apply FILE: No space left on device"
reserve_re="session directory: less than 1/16 of its space or inodes free"
full_re="$enospc_re|$reserve_re"
check "n2's log: peer \"n1\", a session name, \"No space left on device\" (or the reserve)" \
	wait_until "$WAIT" log_has_since 2 "$mark" "$full_re"
log_since 2 "$mark" | grep -E -m 1 -- "$full_re" | sed 's/^/# n2 logged: /'

big_on_n2=("$s2"/sess_dfBig*)
on_n2=0
[[ -e ${big_on_n2[0]} ]] && on_n2=${#big_on_n2[@]}
if ((on_n2 > 0 && on_n2 < 12)); then
	ok "n2 took $on_n2 of the 12 big sessions before it was full"
else fail "n2 took some but not all of the 12 big sessions (it has $on_n2)"; fi
it_note "n2's tmpfs: $(df -B1 --output=used,avail "$s2" | tail -n 1 | awk '{ print $1 " bytes used, " $2 " free" }')"

check "no file on n2 is truncated or corrupt (each equals n1's, or is absent)" \
	tree_subset "$(node_sessions 1)" "$s2"
check "... and n2 holds every one of the 5 small sessions" test -e "$(node_sess_file 2 dfSmall5)"
for k in 1 2 3 4 5; do
	check "dfSmall$k, replicated before the disk filled, is intact on n2" \
		files_equal "$T/before/sess_dfSmall$k" "$(node_sess_file 2 "dfSmall$k")"
done

last_error=$(peer_stat 1 n2 last_error)
if [[ $last_error =~ session\ (#[0-9a-f]{8}) && "|$big_tags|" == *"|${BASH_REMATCH[1]}|"* && $last_error != *sess_* ]]; then
	ok "n1's status: last_error for n2 names the session by its tag ($last_error)"
else
	fail "n1's status: last_error for n2 names the session by its tag ($last_error)"
fi

# Refusals: the ENOSPC lines, and what the reserve turned away (counted,
# logged once).
refusals() { echo $(($(log_count_since 2 "$mark" "$enospc_re") + $(peer_stat 2 n1 refused_new))); }
n0=$(refusals)
more_retries() { (($(refusals) >= n0 + 2)); }
check "n1 keeps retrying (n2 refuses two more within 5 s)" wait_until 5 more_retries

# An update that does not fit: the old version stays on n2, whole.
mark_upd=$(log_mark 2)
refused_upd0=$(peer_stat 2 n1 refused_new)
check "n1: dfSmall1 grows to ~150 KB" php_session 1 dfSmall1 '$_SESSION["blob"] = str_repeat(md5("grow"), 4700);'
# Refused by ENOSPC, or first by the reserve (a growing file must leave
# 1/16 free too: counted in refused_new).
upd_refused() {
	log_has_since 2 "$mark_upd" "peer \"n1\": session $(sid_tag dfSmall1): cannot apply [A-Z]+: No space left on device" ||
		(($(peer_stat 2 n1 refused_new) > refused_upd0))
}
check "n2 refuses the update for lack of space" wait_until "$WAIT" upd_refused
check "n2 still holds dfSmall1's old version, whole (bytes and mtime)" \
	files_equal "$T/before/sess_dfSmall1" "$(node_sess_file 2 dfSmall1)"
check "still: no file on n2 is truncated or corrupt (each equals n1's or the version before)" \
	tree_subset "$(node_sessions 1)" "$T/before" "$s2"
check "n2's daemon is still running" daemon_running 2

# ---------------------------------------------------------------- space freed
for k in 02 04 06 08 10 12; do
	php_destroy 1 "dfBig$k" || fail "php destroy dfBig$k"
done
ok "n1 destroyed 6 of the 12 big sessions"
t_free=$(now_ms)
check_converged "n2 converges with n1: every session on n1 is byte-equal on n2" "$WAIT" 1 2
it_note "measured: disk full: converged $(($(now_ms) - t_free)) ms after space was freed"
check "dfSmall1's 150 KB update arrived" files_equal "$(node_sess_file 1 dfSmall1)" "$(node_sess_file 2 dfSmall1)"
check "n1 has nothing pending for n2" wait_until "$WAIT" peer_settled 1 n2
it_note "n1's last_error for n2 after recovery: '$(peer_stat 1 n2 last_error)'"

check "cluster stops cleanly" cluster_stop
it_finish
