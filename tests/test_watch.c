/* daemon/watch: the inotify watcher of the session directory (watch.h),
 * on a real directory under /tmp, driven by a real loop.
 *
 * Each test makes its changes, then runs the loop until the callback has
 * seen what the test waits for (it stops the loop then) or a guard timer
 * gives up after GUARD_MS. What must not be reported is checked with a
 * marker: a file written after the change; once its close arrives, every
 * event of the change before it has been read (inotify keeps order). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/loop.h"
#include "daemon/watch.h"

#define GUARD_MS 5000
#define GUARD_CODE (-999)
#define MAX_EVENTS 256

struct ev {
        bool null_name;
        char name[256];
        uint32_t mask;
};

/* What the callback saw, and what it waits for. */
struct rec {
        struct ev ev[MAX_EVENTS];
        size_t n;               /* recorded (at most MAX_EVENTS) */
        size_t total;           /* seen */
        const char *until_name; /* stop at an event for this name (NULL: for a NULL name) ... */
        uint32_t until_mask;    /* ... with one of these bits */
        bool waiting;
};

static char dir[64], other[64];
static struct loop *l;
static struct watch *w;
static struct rec rec;

static int64_t on_guard(struct loop *lp, void *ctx) {
        (void)ctx;
        loop_stop(lp, GUARD_CODE);
        return LOOP_TIMER_STOP;
}

static void on_event(void *ctx, const char *name, uint32_t mask) {
        struct rec *r = ctx;
        bool match;

        r->total++;
        if (r->n < MAX_EVENTS) {
                struct ev *e = &r->ev[r->n++];

                e->null_name = name == NULL;
                snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
                e->mask = mask;
        }
        match = r->until_name ? name && strcmp(name, r->until_name) == 0 : name == NULL;
        if (r->waiting && match && (mask & r->until_mask)) {
                r->waiting = false;
                loop_stop(l, 1);
        }
}

static void setup(void) {
        struct loop_timer *guard;
        int r;

        memset(&rec, 0, sizeof(rec));
        strcpy(dir, "/tmp/test_watch.XXXXXX");
        strcpy(other, "/tmp/test_watch_other.XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        cr_assert_not_null(mkdtemp(other), "mkdtemp: %s", strerror(errno));
        l = loop_new();
        cr_assert_not_null(l);
        guard = loop_timer_new(l, on_guard, NULL);
        cr_assert_not_null(guard);
        loop_timer_arm(l, guard, GUARD_MS);
        r = watch_new(l, dir, on_event, &rec, &w);
        cr_assert_eq(r, 0, "watch_new: %s", strerror(-r));
        cr_assert_not_null(w);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)type;
        (void)ftw;
        (void)remove(path);
        return 0;
}

static void teardown(void) {
        watch_free(w);
        w = NULL;
        loop_free(l);
        l = NULL;
        if (dir[0])
                (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (other[0])
                (void)nftw(other, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        dir[0] = other[0] = '\0';
}

TestSuite(watch, .init = setup, .fini = teardown, .timeout = 30);

static void path_of(char *buf, size_t size, const char *d, const char *name) {
        cr_assert_lt((size_t)snprintf(buf, size, "%s/%s", d, name), size);
}

/* Create or rewrite d/name: open, write, close (PHP's own sequence). */
static void write_in(const char *d, const char *name, const char *text) {
        char path[128];
        int fd;

        path_of(path, sizeof(path), d, name);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        cr_assert_eq(close(fd), 0);
}

static void write_file(const char *name, const char *text) {
        write_in(dir, name, text);
}

/* Run until an event for name (NULL: a NULL name) with a bit of mask. */
static void wait_for(const char *name, uint32_t mask) {
        int r;

        rec.until_name = name;
        rec.until_mask = mask;
        rec.waiting = true;
        r = loop_run(l);
        cr_assert_neq(r, GUARD_CODE, "no event for %s with mask %#x within %d ms (%zu events seen)",
                      name ? name : "(NULL name)", mask, GUARD_MS, rec.total);
        cr_assert_eq(r, 1);
}

/* Index of the first event for name with a bit of mask, or -1. */
static int find_ev(const char *name, uint32_t mask) {
        for (size_t i = 0; i < rec.n; i++)
                if (!rec.ev[i].null_name && strcmp(rec.ev[i].name, name) == 0 && (rec.ev[i].mask & mask))
                        return (int)i;
        return -1;
}

static size_t count_for(const char *name) {
        size_t n = 0;

        for (size_t i = 0; i < rec.n; i++)
                n += !rec.ev[i].null_name && strcmp(rec.ev[i].name, name) == 0;
        return n;
}

static void forget(void) {
        rec.n = rec.total = 0;
}

Test(watch, close_after_write_reports_the_name) {
        write_file("sess_a", "a|s:1:\"x\";");
        wait_for("sess_a", IN_CLOSE_WRITE);
        cr_assert_geq(find_ev("sess_a", IN_CLOSE_WRITE), 0);
        cr_assert_eq(rec.n, 1, "one event for create + write + close (IN_CREATE and IN_MODIFY are not taken); got %zu",
                     rec.n);
        cr_assert_eq(rec.ev[0].mask & ~(uint32_t)IN_ISDIR, (uint32_t)IN_CLOSE_WRITE, "mask %#x", rec.ev[0].mask);
}

Test(watch, rewrite_in_place_reports_again) {
        write_file("sess_a", "one");
        wait_for("sess_a", IN_CLOSE_WRITE);
        forget();
        write_file("sess_a", "two");    /* O_RDWR without O_TRUNC, like PHP */
        wait_for("sess_a", IN_CLOSE_WRITE);
        cr_assert_eq(count_for("sess_a"), 1);
}

/* A write not yet closed, and a read-only open, report nothing. */
Test(watch, modify_and_close_nowrite_not_reported) {
        char path[128], buf[8];
        int fd, ro;

        write_file("sess_r", "r");
        wait_for("sess_r", IN_CLOSE_WRITE);
        forget();

        path_of(path, sizeof(path), dir, "sess_w");
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "w", 1), 1);
        path_of(path, sizeof(path), dir, "sess_r");
        ro = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(ro, 0);
        cr_assert_eq(read(ro, buf, sizeof(buf)), 1);
        close(ro);
        write_file("marker", "m");
        wait_for("marker", IN_CLOSE_WRITE);
        cr_assert_eq(count_for("sess_w"), 0, "IN_MODIFY (or IN_CREATE) reported for an open write");
        cr_assert_eq(count_for("sess_r"), 0, "a read-only open and close was reported");

        cr_assert_eq(close(fd), 0);
        wait_for("sess_w", IN_CLOSE_WRITE);
}

Test(watch, attrib_reports_the_name) {
        struct timespec ts[2] = { { 1700000000, 0 }, { 1700000000, 123456789 } };
        char path[128];

        write_file("sess_t", "t");
        wait_for("sess_t", IN_CLOSE_WRITE);
        forget();
        path_of(path, sizeof(path), dir, "sess_t");
        cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "utimensat: %s", strerror(errno));
        wait_for("sess_t", IN_ATTRIB);
        cr_assert_eq(rec.n, 1, "%zu events for one utimensat", rec.n);
}

Test(watch, unlink_reports_the_name) {
        char path[128];

        write_file("sess_d", "d");
        wait_for("sess_d", IN_CLOSE_WRITE);
        forget();
        path_of(path, sizeof(path), dir, "sess_d");
        cr_assert_eq(unlink(path), 0);
        wait_for("sess_d", IN_DELETE);
        cr_assert_eq(rec.ev[rec.n - 1].mask & IN_DELETE, (uint32_t)IN_DELETE);
}

Test(watch, rename_in_and_out_report_the_name) {
        char from[128], to[128];

        /* In, from a directory that is not watched. */
        write_in(other, "sess_in", "i");
        path_of(from, sizeof(from), other, "sess_in");
        path_of(to, sizeof(to), dir, "sess_in");
        cr_assert_eq(rename(from, to), 0, "rename: %s", strerror(errno));
        wait_for("sess_in", IN_MOVED_TO);
        cr_assert_eq(rec.n, 1, "only the arrival: %zu events", rec.n);
        forget();

        /* Out. */
        path_of(from, sizeof(from), dir, "sess_in");
        path_of(to, sizeof(to), other, "sess_out");
        cr_assert_eq(rename(from, to), 0, "rename: %s", strerror(errno));
        wait_for("sess_in", IN_MOVED_FROM);
        forget();

        /* Within: away from the old name, to the new one. */
        write_file("sess_old", "o");
        wait_for("sess_old", IN_CLOSE_WRITE);
        forget();
        path_of(from, sizeof(from), dir, "sess_old");
        path_of(to, sizeof(to), dir, "sess_new");
        cr_assert_eq(rename(from, to), 0);
        wait_for("sess_new", IN_MOVED_TO);
        cr_assert_geq(find_ev("sess_old", IN_MOVED_FROM), 0, "the old name's IN_MOVED_FROM is missing");
        cr_assert_lt(find_ev("sess_old", IN_MOVED_FROM), find_ev("sess_new", IN_MOVED_TO));
}

Test(watch, removing_the_directory_reports_null_name) {
        cr_assert_eq(rmdir(dir), 0, "rmdir: %s", strerror(errno));
        wait_for(NULL, IN_DELETE_SELF | IN_IGNORED);
        for (size_t i = 0; i < rec.n; i++)
                cr_assert(rec.ev[i].null_name, "event %zu names \"%s\"", i, rec.ev[i].name);
        cr_assert_neq(rec.ev[0].mask & (IN_DELETE_SELF | IN_IGNORED), 0, "mask %#x", rec.ev[0].mask);
        dir[0] = '\0';
}

Test(watch, moving_the_directory_away_reports_null_name) {
        char to[128];

        path_of(to, sizeof(to), other, "moved");
        cr_assert_eq(rename(dir, to), 0, "rename: %s", strerror(errno));
        wait_for(NULL, IN_MOVE_SELF);
        cr_assert(rec.ev[0].null_name);
}

Test(watch, queue_overflow_reports_null_name) {
        unsigned long max = 16384;
        char path[2][128];
        FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "re");

        if (f) {
                cr_assert_eq(fscanf(f, "%lu", &max), 1);
                fclose(f);
        }
        cr_assert_leq(max, 1ul << 20, "max_queued_events %lu: too many events to overflow it here", max);
        path_of(path[0], sizeof(path[0]), dir, "sess_x");
        path_of(path[1], sizeof(path[1]), dir, "sess_y");
        /* Alternate two names: inotify merges an event equal to the last one
         * queued. The loop does not run meanwhile, so the queue fills. */
        for (unsigned long i = 0; i < max + 16; i++) {
                int fd = open(path[i & 1], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

                cr_assert_geq(fd, 0);
                close(fd);
        }
        wait_for(NULL, IN_Q_OVERFLOW);
}

Test(watch, after_watch_free_nothing_is_reported) {
        struct loop_timer *t;

        watch_free(w);
        w = NULL;
        write_file("sess_late", "l");
        t = loop_timer_new(l, on_guard, NULL);  /* a short run, stopped like the guard */
        cr_assert_not_null(t);
        loop_timer_arm(l, t, 100);
        cr_assert_eq(loop_run(l), GUARD_CODE);
        cr_assert_eq(rec.total, 0, "%zu events after watch_free", rec.total);
        watch_free(NULL);
}

Test(watch, watch_new_errors) {
        struct watch *w2 = NULL;
        char path[128];

        path_of(path, sizeof(path), dir, "missing");
        cr_assert_eq(watch_new(l, path, on_event, &rec, &w2), -ENOENT);
        write_file("plain", "p");
        path_of(path, sizeof(path), dir, "plain");
        cr_assert_eq(watch_new(l, path, on_event, &rec, &w2), -ENOTDIR, "a file is not a session directory");
}
