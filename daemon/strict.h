/* What the daemon checks before it trusts the session directory
 * (docs/DESIGN.md "The session directory", "Only PHP's own files"), like
 * OpenSSH's StrictModes: who PHP's user is, and that nobody else can create
 * files where sessions live. Each function logs its own refusal with the
 * fix, and returns 0 or a negative errno (the daemon does not start). */
#ifndef SESSYNC_DAEMON_STRICT_H
#define SESSYNC_DAEMON_STRICT_H

#include <sys/types.h>

struct conf;

/* PHP's user: php_user from the config; else the daemon's own user; for a
 * root daemon without php_user, the owner of the session directory (dirfd).
 * A daemon that is neither root nor php_user is refused (-EPERM): what it
 * creates would not be PHP's. */
int strict_php_user(const struct conf *c, int dirfd, uid_t *ret_uid, gid_t *ret_gid);

/* The session directory and every directory above it: refused (-EPERM) if
 * a user other than root and PHP's user owns one, or if anyone but the
 * owner can write one (group, other or an ACL entry; the directory itself
 * even with the sticky bit: anyone could plant a session or rename PHP's;
 * a parent unless sticky: anyone could swap the directory). The path is
 * checked as written and the opened directory's parents from its fd, so a
 * symlink cannot lead the check and the daemon apart. dirfd may be -1
 * (the directory could not be opened): the path is checked, so that a
 * "Permission denied" comes with the reason and the fix. */
int strict_session_dir(const struct conf *c, int dirfd, uid_t php_uid);

#endif
