/* Session files: names, content hashes, reading under PHP's lock and
 * applying in place (docs/DESIGN.md "What PHP does, and what follows").
 *
 * PHP's files handler opens sess_<id> O_CREAT|O_RDWR, holds flock(LOCK_EX)
 * for the whole request and rewrites in place. So a reader takes LOCK_SH and
 * an applier LOCK_EX, both non-blocking: a busy lock is -EWOULDBLOCK, which
 * the caller turns into "retry soon", never "skip". An applier writes into
 * the same inode (a PHP request holding the old inode would otherwise read
 * stale data and write it back) and sets the origin's nanosecond mtime,
 * which PHP's GC reads.
 *
 * Every open is openat() on the session directory fd with O_NOFOLLOW: a
 * name is one path component (checked by sess_name_valid) and never a
 * symlink. Non-logging; negative errno returns.
 */
#ifndef SESSYNC_LIB_SESS_H
#define SESSYNC_LIB_SESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "proto/msg.h"

/* Whose file names these are (the config's session_format, docs/DESIGN.md
 * "Session names"): each framework's files handler names its files its own
 * way, in a directory where other files may live. */
enum sess_format {
        SESS_FORMAT_PHP,        /* PHP's files handler (Symfony, Magento, CakePHP, Yii2 too) */
        SESS_FORMAT_LARAVEL,    /* Illuminate\Session\FileSessionHandler */
        SESS_FORMAT_CI4,        /* CodeIgniter 4 FileHandler */
};

/* Is name a session file of this format? Anything else in the directory is
 * not ours: not watched, not sent, never written. 255 bytes at most.
 *   php           prefix, then one or more of PHP's id characters [A-Za-z0-9,-]
 *   laravel       exactly 40 of [A-Za-z0-9] (Str::random(40), Store::isValidId);
 *                 no prefix (prefix must be "")
 *   codeigniter4  prefix (the cookie name), then 32 of [0-9a-f] (the id), or
 *                 64 (matchIP: md5 of the client's address, then the id) */
bool sess_name_valid(const char *name, enum sess_format format, const char *prefix);

/* xxh3-64 of the content: the tie-breaker of versions and the check of
 * every delta. */
uint64_t sess_hash(const void *p, size_t len);

/* A session id is a bearer token: logs, --status and metrics name a
 * session by its tag, "#" and the first 8 hex digits of the xxh3-64 of the
 * whole name (docs/DESIGN.md "Session ids in logs"). Every node computes
 * the same tag, so one session can be followed across the cluster's logs;
 * an operator finds a user's tag with `printf %s sess_<id> | xxhsum -H3`.
 * Any bytes are accepted (a name from the wire is tagged, never printed).
 * Returns buf. */
#define SESS_TAG_LEN 10                 /* "#" + 8 hex + NUL */
const char *sess_tag(const char *name, char buf[SESS_TAG_LEN]);

static inline uint64_t sess_ts_ns(const struct timespec *ts) {
        return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

/* An open, locked session file with the content it held when locked. */
struct sess_file {
        int fd;                 /* -1 when not open */
        bool created;           /* we created it (it did not exist) */
        bool written;           /* sess_replace succeeded */
        uint8_t *data;          /* current content, owned; NULL if empty */
        size_t len;
        struct proto_ver ver;   /* current version; meaningless if created */
        dev_t dev;
        ino_t ino;
        uid_t uid;              /* owner and link count, also set on -EPERM/-EMLINK */
        nlink_t nlink;
};

#define SESS_FILE_INIT { .fd = -1 }

enum {
        SESS_SHARED = 0,        /* LOCK_SH, O_RDONLY: the sender's read */
        SESS_EXCL = 1 << 0,     /* LOCK_EX, O_RDWR: the applier */
        SESS_CREATE = 1 << 1,   /* with SESS_EXCL: create 0600 if missing */
        SESS_LINKED = 1 << 2,   /* accept a second hard link: only to unlink the name (sess_unlink
                                   removes this name and writes nothing through the others) */
};

/* Open name under dirfd, take the lock without blocking, and read its
 * content (at most max bytes). Returns 0 with *f filled (release it with
 * sess_release), or:
 *   -ENOENT       no such file (and not SESS_CREATE)
 *   -EWOULDBLOCK  locked by someone else (a PHP request): retry soon
 *   -EFBIG        larger than max; f->len holds its size for the log
 *   -ELOOP        a symlink; -EISDIR/-EINVAL not a regular file
 *   other         open/read errors
 * SESS_SHARED opens O_RDONLY so our reads raise IN_CLOSE_NOWRITE, which the
 * watcher ignores. */
int sess_open(int dirfd, const char *name, int flags, size_t max, struct sess_file *f);

/* Any owner: for sess_open_owned. */
#define SESS_ANY_OWNER ((uid_t)-1)

/* sess_open, refusing what is not PHP's own file (docs/DESIGN.md "Only
 * PHP's own files"); both checks are made under the lock and skip a
 * file this call created:
 *   -EMLINK  more than one hard link (sess_open refuses these too)
 *   -EPERM   not owned by owner (unless owner is SESS_ANY_OWNER)
 * f->uid and f->nlink are then set, for the log. */
int sess_open_owned(int dirfd, const char *name, int flags, size_t max, uid_t owner, struct sess_file *f);

/* The rule itself, for a file known by its stat (the inventory looks at
 * files it does not open): 0, -EMLINK or -EPERM as above. */
int sess_owned(const struct stat *st, uid_t owner, int flags);

/* Replace the content in place: reserve the space first (fallocate), so a
 * full disk fails before the old bytes are touched, then write, truncate to
 * size and set the mtime. On -ENOSPC the file is as it was. */
int sess_replace(struct sess_file *f, const void *data, size_t len, uint64_t mtime_ns);

/* Give a file we created to uid:gid (a root daemon writing for PHP's user). */
int sess_chown(struct sess_file *f, uid_t uid, gid_t gid);

/* Set only the mtime (a touch: PHP's lazy_write updates only the mtime). */
int sess_set_mtime(struct sess_file *f, uint64_t mtime_ns);

/* Unlink name while holding the lock, if it still names f's inode. */
int sess_unlink(int dirfd, const char *name, struct sess_file *f);

/* Unlock and close. A file we created but never wrote is removed again, so
 * a refused or failed apply leaves no empty session behind. Accepts a
 * released or never-opened f. */
void sess_release(int dirfd, const char *name, struct sess_file *f);

/* Open the session directory (O_DIRECTORY|O_CLOEXEC). */
int sess_dir_open(const char *path);

#endif
