#include "lib/state.h"
#include "lib/io.h"

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

#define STATE_FILE "journal"
#define STATE_BOOT_FILE "boot_id"
#define STATE_BOOT_SRC "/proc/sys/kernel/random/boot_id"
#define STATE_SLACK 4096

struct state_rec {
        UT_hash_handle hh;
        uint8_t kind;
        struct proto_ver ver;
        uint64_t made_ns;
        char name[];
};

struct state {
        int dirfd;
        int fd;
        int lockfd;
        bool readonly;
        bool new_boot;
        bool unsynced;
        size_t live;
        size_t records;
};

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int format_t(char *buf, size_t size, const char *name, uint8_t kind, const struct proto_ver *v,
                    uint64_t made) {
        int n = snprintf(buf, size, "T %u %" PRIu64 " %016" PRIx64 " %" PRIu64 " %s\n", kind, v->mtime_ns,
                         v->hash, made, name);
        return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : n;
}

static void map_free(struct state_rec **map) {
        struct state_rec *r, *tmp;

        HASH_ITER(hh, *map, r, tmp) {
                HASH_DEL(*map, r);
                free(r);
        }
}

/* One journal line into the map. Malformed lines are skipped: only the last
 * one can be torn, and skipping loses at most that one record. */
static int apply_line(struct state_rec **map, char *line) {
        struct state_rec *old = NULL, *rec;
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
            (kind > PROTO_KIND_EXPIRE && kind != STATE_KIND_APPLYING && kind != STATE_KIND_MARK &&
             kind != (PROTO_KIND_DESTROY | STATE_UNSEEN) && kind != (PROTO_KIND_EXPIRE | STATE_UNSEEN)) ||
            !proto_name_ok(name, strlen(name)))
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

static int load(int fd, struct state_rec **map, size_t *ret_records, off_t *ret_torn_at) {
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
int state_compact(struct state *s, state_next_cb next, void *ctx) {
        struct proto_ver v;
        const char *name;
        uint8_t kind;
        uint64_t made;
        size_t live = 0;
        char buf[512];
        int fd, r = 0;

        if (s->readonly)
                return -EROFS;
        /* A fresh file, never through a link someone put in its place. */
        (void)unlinkat(s->dirfd, STATE_FILE ".new", 0);
        fd = openat(s->dirfd, STATE_FILE ".new", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (r == 0 && next(ctx, &name, &kind, &v, &made) > 0) {
                int n = format_t(buf, sizeof(buf), name, kind, &v, made);
                r = n < 0 ? n : io_write_all(fd, buf, (size_t)n);
                live++;
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && renameat(s->dirfd, STATE_FILE ".new", s->dirfd, STATE_FILE) < 0)
                r = -errno;
        if (r == 0 && fsync(s->dirfd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(s->dirfd, STATE_FILE ".new", 0);
                return r;
        }
        fd = openat(s->dirfd, STATE_FILE, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        close(s->fd);
        s->fd = fd;
        s->records = s->live = live;
        s->unsynced = false;
        return 0;
}

static int map_next(void *ctx, const char **name, uint8_t *kind, struct proto_ver *v, uint64_t *made) {
        struct state_rec **cur = ctx;

        if (!*cur)
                return 0;
        *name = (*cur)->name;
        *kind = (*cur)->kind;
        *v = (*cur)->ver;
        *made = (*cur)->made_ns;
        *cur = (*cur)->hh.next;
        return 1;
}

bool state_want_compact(const struct state *s, size_t live) {
        return !s->readonly && s->records > 2 * live + STATE_SLACK;
}

bool state_new_boot(const struct state *s) {
        return s->new_boot;
}

/* A file of the writer's own in state_dir: one link (a second name may be
 * a file outside, which a write or truncate would reach) and owned by us or
 * root. O_NOFOLLOW at open stops symlinks; this stops hard links. */
static int own_file(int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_nlink != 1)
                return -EMLINK;
        if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return -EPERM;   /* another could write tombstones (forced logouts) into it */
        return 0;
}

/* state_dir itself: ours or root's, and nobody else may create or swap
 * files in it. */
static int own_dir(int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return -EPERM;
        return 0;
}

/* Compare the kernel's boot id with the one kept in state_dir, and keep the
 * current one. No boot id source (not Linux /proc): never a new boot. */
static int check_boot(struct state *s) {
        char now[64] = "", was[64] = "";
        ssize_t n;
        int fd;

        fd = open(STATE_BOOT_SRC, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, now, sizeof(now) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        now[n] = 0;
        fd = openat(s->dirfd, STATE_BOOT_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if ((n = own_file(fd)) < 0) {
                close(fd);
                return (int)n;
        }
        n = read(fd, was, sizeof(was) - 1);
        if (n < 0)
                n = 0;
        was[n] = 0;
        s->new_boot = strcmp(now, was) != 0;
        if (s->new_boot && (ftruncate(fd, 0) < 0 || pwrite(fd, now, strlen(now), 0) < 0 || fsync(fd) < 0)) {
                int r = -errno;
                close(fd);
                return r;
        }
        close(fd);
        return 0;
}

int state_open(const char *state_dir, state_load_cb cb, void *ctx, bool readonly, struct state **ret) {
        struct state *s = calloc(1, sizeof(*s));
        struct state_rec *map = NULL;
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
                if ((r = own_dir(s->dirfd)) < 0)
                        goto fail;
                /* A lock file, not the journal: compaction renames the journal. */
                s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (s->lockfd < 0) {
                        r = -errno;
                        goto fail;
                }
                if ((r = own_file(s->lockfd)) < 0)
                        goto fail;
                if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
                        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                        goto fail;
                }
        }
        s->fd = openat(s->dirfd, STATE_FILE, (readonly ? O_RDONLY : O_RDWR | O_CREAT | O_APPEND) | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (s->fd < 0) {
                r = -errno;
                if (readonly && r == -ENOENT)
                        goto done;
                goto fail;
        }
        if (!readonly && (r = own_file(s->fd)) < 0)
                goto fail;
        if ((r = load(s->fd, &map, &s->records, &torn_at)) < 0)
                goto fail;
        /* Cut a torn tail off before appending: the next record would be
         * glued onto it into one garbage line, and that tombstone lost. */
        if (!readonly && torn_at >= 0 && ftruncate(s->fd, torn_at) < 0) {
                r = -errno;
                goto fail;
        }
        s->live = HASH_COUNT(map);
        for (struct state_rec *t = map; t; t = t->hh.next)
                if (cb)
                        cb(ctx, t->name, t->kind, &t->ver, t->made_ns);
        if (!readonly && (r = check_boot(s)) < 0)
                goto fail;
        if (!readonly && s->records > 2 * s->live + 64) {
                struct state_rec *cur = map;

                if ((r = state_compact(s, map_next, &cur)) < 0)
                        goto fail;
        }
done:
        map_free(&map);
        *ret = s;
        return 0;
fail:
        map_free(&map);
        state_close(s);
        return r;
}

int state_put(struct state *s, const char *name, uint8_t kind, const struct proto_ver *v) {
        char buf[512];
        int n, r;

        if (s->readonly)
                return -EROFS;
        n = format_t(buf, sizeof(buf), name, kind, v, now_ns());
        if (n < 0)
                return n;
        if ((r = io_write_all(s->fd, buf, (size_t)n)) < 0)
                return r;
        if (kind != PROTO_KIND_FILE && kind != STATE_KIND_APPLYING)
                s->unsynced = true;   /* only tombstones (and their watermark) must survive power loss */
        s->records++;
        s->live++;
        return 0;
}

int state_del(struct state *s, const char *name) {
        char buf[300];
        int n, r;

        if (s->readonly)
                return -EROFS;
        n = snprintf(buf, sizeof(buf), "D %s\n", name);
        if (n < 0 || (size_t)n >= sizeof(buf))
                return -ENAMETOOLONG;
        if ((r = io_write_all(s->fd, buf, (size_t)n)) < 0)
                return r;
        s->unsynced = true;
        s->records++;
        if (s->live)
                s->live--;
        return 0;
}

int state_sync(struct state *s) {
        if (!s || !s->unsynced || s->readonly)
                return 0;
        if (fdatasync(s->fd) < 0)
                return -errno;
        s->unsynced = false;
        return 0;
}

void state_close(struct state *s) {
        if (!s)
                return;
        (void)state_sync(s);
        if (s->fd >= 0)
                close(s->fd);
        if (s->dirfd >= 0)
                close(s->dirfd);
        if (s->lockfd >= 0)
                close(s->lockfd);
        free(s);
}
