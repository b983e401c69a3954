#include "daemon/strict.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"
#include "lib/conf.h"

static const char *user_name(uid_t uid, char *buf, size_t size) {
        struct passwd *pw = getpwuid(uid);

        if (pw)
                snprintf(buf, size, "%s", pw->pw_name);
        else
                snprintf(buf, size, "%u", (unsigned)uid);
        return buf;
}

static int lookup(const char *name, uid_t *ret_uid, gid_t *ret_gid) {
        struct passwd *pw;
        char *end;
        unsigned long n;

        errno = 0;
        pw = getpwnam(name);
        if (!pw) {
                n = strtoul(name, &end, 10);
                if (*name < '0' || *name > '9' || *end || n >= (unsigned long)(uid_t)-1)
                        return errno ? -errno : -ENOENT;
                pw = getpwuid((uid_t)n);
                if (!pw) {   /* a bare uid without an account: its group is its number */
                        *ret_uid = (uid_t)n;
                        *ret_gid = (gid_t)n;
                        return 0;
                }
        }
        *ret_uid = pw->pw_uid;
        *ret_gid = pw->pw_gid;
        return 0;
}

int strict_php_user(const struct conf *c, int dirfd, uid_t *ret_uid, gid_t *ret_gid) {
        char a[64], b[64];
        struct stat st;
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        int r;

        if (c->php_user) {
                if ((r = lookup(c->php_user, &uid, &gid)) < 0) {
                        log_error("%s: php_user \"%s\": no such user", c->path, c->php_user);
                        return r;
                }
                if (geteuid() != 0 && geteuid() != uid) {
                        log_error("%s: php_user is %s but sessyncd runs as %s: the files it creates would not be PHP's; "
                                  "run it as %s (User= in the unit) or as root", c->path, c->php_user,
                                  user_name(geteuid(), a, sizeof(a)), c->php_user);
                        return -EPERM;
                }
        } else if (geteuid() != 0) {
                uid = geteuid();
                gid = getegid();
        } else {
                /* Never guessed from the directory's owner: whoever owns it
                 * would be PHP's user by definition, and pass every check. */
                uid = 0;
                gid = 0;
                if ((dirfd >= 0 ? fstat(dirfd, &st) : stat(c->session_dir, &st)) == 0 && st.st_uid != 0) {
                        log_error("%s: sessyncd runs as root and session_dir \"%s\" is %s's: set php_user = %s in "
                                  "[node] (or run sessyncd as that user, as the systemd unit does)", c->path,
                                  c->session_dir, user_name(st.st_uid, a, sizeof(a)), a);
                        return -EPERM;
                }
        }
        log_info("PHP's user is %s: only its files travel%s", user_name(uid, b, sizeof(b)),
                 uid != geteuid() ? ", and replicas are given to it" : "");
        *ret_uid = uid;
        *ret_gid = gid;
        return 0;
}

static void fix_hint(const struct conf *c, uid_t php_uid) {
        char u[64];

        user_name(php_uid, u, sizeof(u));
        /* One line each: a log line is one event, and keeps its priority. */
        log_error("fix: mount it for PHP's user alone, e.g. in /etc/fstab:");
        log_error("fix:     tmpfs %s tmpfs uid=%s,gid=%s,mode=0700,size=512m 0 0", c->session_dir, u, u);
        log_error("fix: or, on disk: chown %s: %s && chmod 0700 %s (and setfacl -b %s if it has an ACL)", u,
                  c->session_dir, c->session_dir, c->session_dir);
}

/* One directory on the way: owned by root or PHP's user, and nobody else
 * may write it (the session directory itself not even with the sticky bit:
 * anyone could plant a file, or rename PHP's; a parent, not without it:
 * anyone could put another directory in its place). Returns 0 or -EPERM,
 * logged with the fix. */
static int check_dir(const struct conf *c, const char *what, const struct stat *st, bool top, uid_t php_uid) {
        char u[64], o[64];
        const char *who = NULL;

        if (st->st_uid != 0 && st->st_uid != php_uid) {
                log_error("session_dir \"%s\": \"%s\" is owned by %s, neither root nor PHP's user (%s): its owner "
                          "could plant sessions or swap the directory", c->session_dir, what,
                          user_name(st->st_uid, o, sizeof(o)), user_name(php_uid, u, sizeof(u)));
                fix_hint(c, php_uid);
                return -EPERM;
        }
        if (S_ISLNK(st->st_mode))
                return 0;   /* a symlink's mode means nothing; its directory and target are checked */
        /* An ACL's named entries are bounded by its mask, which is what the
         * mode shows as the group bits: the mode says it all. */
        if ((st->st_mode & S_IWOTH) && (top || !(st->st_mode & S_ISVTX)))
                who = "writable by every user";
        else if ((st->st_mode & S_IWGRP) && (top || !(st->st_mode & S_ISVTX)))
                who = "writable by its group (or an ACL)";
        else if (top && (st->st_mode & (S_IRGRP | S_IROTH)))
                who = "readable by others (or an ACL)";
        if (!who)
                return 0;
        log_error("session_dir \"%s\": %s\"%s\" is %s (mode %04o): %s", c->session_dir,
                  top ? "" : "the directory above it, ", what, who, (unsigned)(st->st_mode & 07777),
                  !top ? "they could put another directory in its place" :
                  (st->st_mode & (S_IWGRP | S_IWOTH)) ? "they could plant a session file, or rename PHP's to an id "
                                                         "they know" :
                  "they could list the session ids, which are what logs in a user");
        fix_hint(c, php_uid);
        return -EPERM;
}

/* The configured path must be the real one: no symlink anywhere on it. A
 * symlink, or a chain of them, in a directory someone else controls could
 * be pointed elsewhere before the next start, and PHP resolves the path on
 * every request. Each directory on it is checked as written. */
static int check_path(const struct conf *c, uid_t php_uid) {
        char real[PATH_MAX], path[PATH_MAX];
        size_t len = strlen(c->session_dir);
        struct stat st;
        int r;

        if (len >= sizeof(path) || c->session_dir[0] != '/')
                return -ENAMETOOLONG;
        memcpy(path, c->session_dir, len + 1);
        while (len > 1 && path[len - 1] == '/')
                path[--len] = 0;
        if (!realpath(path, real)) {
                r = -errno;
                log_error("session_dir \"%s\": %s", c->session_dir, strerror(-r));
                return r;
        }
        if (strcmp(real, path) != 0) {
                log_error("session_dir \"%s\" is not its real path \"%s\" (a symlink, or \"..\" or \".\" on the "
                          "way): a link could be pointed elsewhere; use \"%s\" here and in php.ini",
                          c->session_dir, real, real);
                return -EPERM;
        }
        for (size_t i = 1; i <= len; i++) {
                char keep;

                if (path[i] != '/' && path[i] != 0)
                        continue;
                keep = path[i];
                path[i] = 0;
                r = lstat(path, &st) < 0 ? -errno : check_dir(c, path, &st, i == len, php_uid);
                if (r < 0 && r != -EPERM)
                        log_error("session_dir \"%s\": \"%s\": %s", c->session_dir, path, strerror(-r));
                path[i] = keep;
                if (r < 0)
                        return r;
        }
        return 0;
}

int strict_session_dir(const struct conf *c, int dirfd, uid_t php_uid) {
        struct stat st, up;
        int fd = -1, r;

        if ((r = check_path(c, php_uid)) < 0)
                return r;
        if (dirfd < 0)
                return 0;   /* not opened: the path is all there is to check */
        /* The directory actually opened, and every one above it, walked from
         * the fd: no name is resolved again. */
        if (fstat(dirfd, &st) < 0)
                return -errno;
        if ((r = check_dir(c, c->session_dir, &st, true, php_uid)) < 0)
                return r;
        if (st.st_mode & S_ISVTX)
                log_warn("session_dir \"%s\": the sticky bit is set; harmless, but it is the mark of a shared "
                         "directory (Debian's 1733), not of PHP's own", c->session_dir);
        /* O_PATH: walking up needs no read permission on the parents, so a
         * parent the daemon may not list is checked all the same. */
        fd = openat(dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                r = -errno;
        while (fd >= 0) {
                struct stat prev = st;
                int parent;

                if (fstat(fd, &up) < 0) {
                        r = -errno;
                        break;
                }
                if (up.st_dev == prev.st_dev && up.st_ino == prev.st_ino)
                        break;   /* "/": its own parent */
                if ((r = check_dir(c, "(a directory above it)", &up, false, php_uid)) < 0)
                        break;
                st = up;
                parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (parent < 0)
                        r = -errno;   /* cannot look: refuse rather than trust */
                close(fd);
                fd = parent;
        }
        if (fd >= 0)
                close(fd);
        if (r < 0 && r != -EPERM)
                log_error("session_dir \"%s\": cannot check the directories above it: %s; not trusted",
                          c->session_dir, strerror(-r));
        return r;
}
