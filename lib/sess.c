#include "lib/sess.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <xxhash.h>

static bool all_of(const char *s, size_t n, bool (*ok)(char)) {
        for (size_t i = 0; i < n; i++)
                if (!ok(s[i]))
                        return false;
        return true;
}

static bool alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool php_id(char c) {
        return alnum(c) || c == ',' || c == '-';
}

static bool hex(char c) {
        return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

bool sess_name_valid(const char *name, enum sess_format format, const char *prefix) {
        size_t plen = strlen(prefix), n = strnlen(name, PROTO_NAME_MAX + 1), id;

        if (n <= plen || n > PROTO_NAME_MAX || strncmp(name, prefix, plen) != 0)
                return false;
        id = n - plen;
        switch (format) {
        case SESS_FORMAT_PHP:
                return all_of(name + plen, id, php_id);
        case SESS_FORMAT_LARAVEL:
                return plen == 0 && id == 40 && all_of(name, id, alnum);
        case SESS_FORMAT_CI4:
                return (id == 32 || id == 64) && all_of(name + plen, id, hex);
        }
        return false;
}

uint64_t sess_hash(const void *p, size_t len) {
        return XXH3_64bits(p, len);
}

const char *sess_tag(const char *name, char buf[SESS_TAG_LEN]) {
        snprintf(buf, SESS_TAG_LEN, "#%08x", (unsigned)(sess_hash(name, strlen(name)) >> 32));
        return buf;
}

int sess_dir_open(const char *path) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int read_all(int fd, uint8_t *buf, size_t len) {
        size_t off = 0;

        while (off < len) {
                ssize_t n = pread(fd, buf + off, len - off, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;   /* shrank under a lock we hold: someone ignores flock */
                off += (size_t)n;
        }
        return 0;
}

static int open_file(int dirfd, const char *name, int flags, bool *created) {
        int oflags = O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
        int fd;

        *created = false;
        oflags |= (flags & SESS_EXCL) ? O_RDWR : O_RDONLY;
        for (int tries = 0; tries < 3; tries++) {
                fd = openat(dirfd, name, oflags);
                if (fd >= 0 || errno != ENOENT || !(flags & SESS_CREATE))
                        return fd < 0 ? -errno : fd;
                fd = openat(dirfd, name, oflags | O_CREAT | O_EXCL, 0600);
                if (fd >= 0) {
                        *created = true;
                        return fd;
                }
                if (errno != EEXIST)
                        return -errno;
                /* Lost a race with PHP creating it: open what it made. */
        }
        return -EAGAIN;
}

/* Does name still name the inode dev:ino? Checked before a name is
 * removed: someone may have put another file there since. */
static bool same_inode(int dirfd, const char *name, dev_t dev, ino_t ino) {
        struct stat st;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        return st.st_dev == dev && st.st_ino == ino;
}

int sess_owned(const struct stat *st, uid_t owner, int flags) {
        if (st->st_nlink > 1 && !(flags & SESS_LINKED))
                return -EMLINK;
        if (owner != SESS_ANY_OWNER && st->st_uid != owner)
                return -EPERM;
        return 0;
}

int sess_open_owned(int dirfd, const char *name, int flags, size_t max, uid_t owner, struct sess_file *f) {
        struct stat st;
        bool created = false, locked = false;
        uint8_t *data = NULL;
        int fd = -1, r;

        fd = open_file(dirfd, name, flags, &created);
        if (fd < 0) {
                r = fd;
                goto out;
        }
        /* One fstat, under the lock, on the way that matters (every change
         * is read here): flock works on any open file, so what is no
         * regular file is told apart after it, or when the lock is held. */
        if (flock(fd, ((flags & SESS_EXCL) ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
                r = -errno;    /* EWOULDBLOCK: a PHP request holds it */
                if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
                        r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                goto out;
        }
        locked = true;
        /* Size and mtime as of holding the lock: a writer that finished
         * between open and flock has changed both. */
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
                goto out;
        }
        if (st.st_nlink == 0) {
                r = -ENOENT;   /* unlinked (session_destroy) while we waited */
                goto out;
        }
        /* Only PHP's own files (docs/DESIGN.md "Only PHP's own files"): a
         * file another uid made is one PHP itself would refuse, and a
         * second link may name a file outside the directory. A file we just
         * created is ours until the caller gives it away. */
        f->uid = st.st_uid;
        f->nlink = st.st_nlink;
        if (!created && (r = sess_owned(&st, owner, flags)) < 0)
                goto out;
        if ((uint64_t)st.st_size > max) {
                f->len = (size_t)st.st_size;
                r = -EFBIG;
                goto out;
        }
        if (st.st_size > 0) {
                data = malloc((size_t)st.st_size);
                if (!data) {
                        r = -ENOMEM;
                        goto out;
                }
                if ((r = read_all(fd, data, (size_t)st.st_size)) < 0)
                        goto out;
        }
        f->fd = fd;
        f->created = created;
        f->written = false;
        f->data = data;
        f->len = (size_t)st.st_size;
        f->ver.mtime_ns = sess_ts_ns(&st.st_mtim);
        f->ver.hash = sess_hash(data, f->len);
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        return 0;
out:
        free(data);
        if (fd >= 0) {
                /* Only while we hold the lock: if PHP opened the file we
                 * created and locked it first, it is PHP's now. */
                if (created && locked && same_inode(dirfd, name, st.st_dev, st.st_ino))
                        (void)unlinkat(dirfd, name, 0);
                close(fd);
        }
        return r;
}

static int set_mtime(int fd, uint64_t mtime_ns) {
        struct timespec ts[2] = {
                { .tv_sec = 0, .tv_nsec = UTIME_OMIT },
                { .tv_sec = (time_t)(mtime_ns / 1000000000ull), .tv_nsec = (long)(mtime_ns % 1000000000ull) },
        };
        return futimens(fd, ts) < 0 ? -errno : 0;
}

int sess_replace(struct sess_file *f, const void *data, size_t len, uint64_t mtime_ns) {
        const uint8_t *p = data;
        size_t off = 0, head = len;
        int r;

        if (f->fd < 0)
                return -EBADF;
        /* Reserve first: on a full tmpfs this fails and the old content is
         * untouched. After it succeeds the writes below cannot hit ENOSPC. */
        if (len > 0 && fallocate(f->fd, 0, 0, (off_t)len) < 0) {
                r = -errno;
                if (r != -EOPNOTSUPP)
                        return r;
                /* No fallocate here: write the part beyond the old end first.
                 * Only it needs new blocks, so if it fails the old bytes
                 * are untouched (cut back to their length). Overwriting
                 * allocated blocks then needs no space on a non-COW fs. */
                if (len > f->len) {
                        size_t toff = f->len;

                        while (toff < len) {
                                ssize_t n = pwrite(f->fd, p + toff, len - toff, (off_t)toff);
                                if (n < 0 && errno == EINTR)
                                        continue;
                                if (n < 0) {
                                        r = -errno;
                                        /* Cutting back can fail too (EIO): then the
                                         * old bytes are followed by part of the new
                                         * ones, and the caller must not take this
                                         * for a clean, retryable full disk. */
                                        if (ftruncate(f->fd, (off_t)f->len) < 0)
                                                r = -EIO;
                                        return r;
                                }
                                toff += (size_t)n;
                        }
                        head = f->len;   /* the tail is written */
                }
        }
        while (off < head) {
                ssize_t n = pwrite(f->fd, p + off, head - off, (off_t)off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += (size_t)n;
        }
        if (ftruncate(f->fd, (off_t)len) < 0)
                return -errno;
        if (f->created && fchmod(f->fd, 0600) < 0)
                return -errno;
        if ((r = set_mtime(f->fd, mtime_ns)) < 0)
                return r;
        f->written = true;
        f->ver.mtime_ns = mtime_ns;
        f->ver.hash = sess_hash(data, len);
        return 0;
}

int sess_open(int dirfd, const char *name, int flags, size_t max, struct sess_file *f) {
        return sess_open_owned(dirfd, name, flags, max, SESS_ANY_OWNER, f);
}

int sess_chown(struct sess_file *f, uid_t uid, gid_t gid) {
        if (f->fd < 0)
                return -EBADF;
        return fchown(f->fd, uid, gid) < 0 ? -errno : 0;
}

int sess_set_mtime(struct sess_file *f, uint64_t mtime_ns) {
        int r;

        if (f->fd < 0)
                return -EBADF;
        if ((r = set_mtime(f->fd, mtime_ns)) < 0)
                return r;
        f->ver.mtime_ns = mtime_ns;
        return 0;
}

int sess_unlink(int dirfd, const char *name, struct sess_file *f) {
        if (f->fd < 0)
                return -EBADF;
        if (!same_inode(dirfd, name, f->dev, f->ino))
                return -ESTALE;
        if (unlinkat(dirfd, name, 0) < 0)
                return -errno;
        return 0;
}

void sess_release(int dirfd, const char *name, struct sess_file *f) {
        if (f->fd >= 0) {
                if (f->created && !f->written && same_inode(dirfd, name, f->dev, f->ino))
                        (void)unlinkat(dirfd, name, 0);
                close(f->fd);   /* drops the flock */
        }
        free(f->data);
        *f = (struct sess_file)SESS_FILE_INIT;
}
