#include "lib/tomb.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#define TOMB_FILE "tombstones"

struct tomb_rec {
        UT_hash_handle hh;
        uint8_t kind;
        struct proto_ver ver;
        uint64_t made_ns;
        char name[];
};

struct tomb_store {
        int dirfd;
        int fd;
        int lockfd;
        bool readonly;
        bool unsynced;
        size_t live;
        size_t records;
};

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int format_t(char *buf, size_t size, const char *name, uint8_t kind, const struct proto_ver *v,
                    uint64_t made) {
        int n = snprintf(buf, size, "T %u %" PRIu64 " %016" PRIx64 " %" PRIu64 " %s\n", kind, v->mtime_ns,
                         v->hash, made, name);
        return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : n;
}

static void map_free(struct tomb_rec **map) {
        struct tomb_rec *r, *tmp;

        HASH_ITER(hh, *map, r, tmp) {
                HASH_DEL(*map, r);
                free(r);
        }
}

/* One journal line into the map. Malformed lines are skipped: only the last
 * one can be torn, and skipping loses at most that one record. */
static int apply_line(struct tomb_rec **map, char *line) {
        struct tomb_rec *old = NULL, *rec;
        char name[PROTO_NAME_MAX + 1];
        unsigned kind;
        uint64_t mt, h, made;

        if (line[0] == 'D' && sscanf(line, "D %255s", name) == 1) {
                HASH_FIND_STR(*map, name, old);
                if (old) {
                        HASH_DEL(*map, old);
                        free(old);
                }
                return 0;
        }
        if (sscanf(line, "T %u %" SCNu64 " %" SCNx64 " %" SCNu64 " %255s", &kind, &mt, &h, &made, name) != 5 ||
            (kind != PROTO_KIND_DESTROY && kind != PROTO_KIND_EXPIRE) || !proto_name_ok(name, strlen(name)))
                return 0;
        HASH_FIND_STR(*map, name, old);
        if (old) {
                HASH_DEL(*map, old);
                free(old);
        }
        rec = calloc(1, sizeof(*rec) + strlen(name) + 1);
        if (!rec)
                return -ENOMEM;
        rec->kind = (uint8_t)kind;
        rec->ver = (struct proto_ver){ mt, h };
        rec->made_ns = made;
        strcpy(rec->name, name);
        HASH_ADD_STR(*map, name, rec);
        return 0;
}

static int load(int fd, struct tomb_rec **map, size_t *ret_records, off_t *ret_torn_at) {
        FILE *f = NULL;
        char *line = NULL;
        size_t cap = 0, records = 0;
        off_t end = 0, torn_at = -1;
        ssize_t n;
        int dup_fd, r = 0;

        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0)
                return -errno;
        f = fdopen(dup_fd, "r");
        if (!f) {
                close(dup_fd);
                return -errno;
        }
        rewind(f);
        while ((n = getline(&line, &cap, f)) > 0) {
                if (line[n - 1] != '\n') {
                        torn_at = end;   /* torn tail */
                        break;
                }
                end += n;
                records++;
                if ((r = apply_line(map, line)) < 0)
                        break;
        }
        free(line);
        fclose(f);
        *ret_records = records;
        *ret_torn_at = torn_at;
        return r;
}

/* Rewrite the journal with only the live records, atomically. */
static int compact(struct tomb_store *s, struct tomb_rec *map) {
        char buf[512];
        int fd, r = 0;

        fd = openat(s->dirfd, TOMB_FILE ".new", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        for (struct tomb_rec *t = map; t && r == 0; t = t->hh.next) {
                int n = format_t(buf, sizeof(buf), t->name, t->kind, &t->ver, t->made_ns);
                r = n < 0 ? n : write_all(fd, buf, (size_t)n);
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && renameat(s->dirfd, TOMB_FILE ".new", s->dirfd, TOMB_FILE) < 0)
                r = -errno;
        if (r == 0 && fsync(s->dirfd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(s->dirfd, TOMB_FILE ".new", 0);
                return r;
        }
        fd = openat(s->dirfd, TOMB_FILE, O_RDWR | O_APPEND | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        close(s->fd);
        s->fd = fd;
        s->records = s->live;
        return 0;
}

int tomb_store_open(const char *state_dir, tomb_load_cb cb, void *ctx, bool readonly, struct tomb_store **ret) {
        struct tomb_store *s = calloc(1, sizeof(*s));
        struct tomb_rec *map = NULL;
        off_t torn_at = -1;
        int r;

        if (!s)
                return -ENOMEM;
        s->fd = s->dirfd = s->lockfd = -1;
        s->readonly = readonly;
        s->dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dirfd < 0) {
                r = -errno;
                if (readonly && r == -ENOENT)
                        goto done;   /* no daemon ever ran here: no tombstones */
                goto fail;
        }
        if (!readonly) {
                /* A lock file, not the journal: compaction renames the journal. */
                s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (s->lockfd < 0) {
                        r = -errno;
                        goto fail;
                }
                if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
                        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                        goto fail;
                }
        }
        s->fd = openat(s->dirfd, TOMB_FILE, readonly ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC,
                       0600);
        if (s->fd < 0) {
                r = -errno;
                if (readonly && r == -ENOENT)
                        goto done;
                goto fail;
        }
        if ((r = load(s->fd, &map, &s->records, &torn_at)) < 0)
                goto fail;
        /* Cut a torn tail off before appending: the next record would be
         * glued onto it into one garbage line, and that tombstone lost. */
        if (!readonly && torn_at >= 0 && ftruncate(s->fd, torn_at) < 0) {
                r = -errno;
                goto fail;
        }
        s->live = HASH_COUNT(map);
        for (struct tomb_rec *t = map; t; t = t->hh.next)
                if (cb)
                        cb(ctx, t->name, t->kind, &t->ver, t->made_ns);
        if (!readonly && s->records > 2 * s->live + 64 && (r = compact(s, map)) < 0)
                goto fail;
done:
        map_free(&map);
        *ret = s;
        return 0;
fail:
        map_free(&map);
        tomb_store_close(s);
        return r;
}

int tomb_store_put(struct tomb_store *s, const char *name, uint8_t kind, const struct proto_ver *v) {
        char buf[512];
        int n, r;

        if (s->readonly)
                return -EROFS;
        n = format_t(buf, sizeof(buf), name, kind, v, now_ns());
        if (n < 0)
                return n;
        if ((r = write_all(s->fd, buf, (size_t)n)) < 0)
                return r;
        s->unsynced = true;
        s->records++;
        s->live++;
        return 0;
}

int tomb_store_del(struct tomb_store *s, const char *name) {
        char buf[300];
        int n, r;

        if (s->readonly)
                return -EROFS;
        n = snprintf(buf, sizeof(buf), "D %s\n", name);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        if ((r = write_all(s->fd, buf, (size_t)n)) < 0)
                return r;
        s->unsynced = true;
        s->records++;
        if (s->live)
                s->live--;
        return 0;
}

int tomb_store_sync(struct tomb_store *s) {
        if (!s || !s->unsynced || s->readonly)
                return 0;
        if (fdatasync(s->fd) < 0)
                return -errno;
        s->unsynced = false;
        return 0;
}

void tomb_store_close(struct tomb_store *s) {
        if (!s)
                return;
        (void)tomb_store_sync(s);
        if (s->fd >= 0)
                close(s->fd);
        if (s->dirfd >= 0)
                close(s->dirfd);
        if (s->lockfd >= 0)
                close(s->lockfd);
        free(s);
}
