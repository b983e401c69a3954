/* lib/state: the persistent state journal (docs/DESIGN.md "The state
 * journal"). A destroyed session must never come back, so every
 * test reopens the store and checks what the load callback reports.
 *
 * Each test gets a fresh state directory under /tmp; .fini removes it even
 * when an assertion fails. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/state.h"

/* fdatasync, seen: this definition takes the place of libc's for every
 * object linked into this test (lib/state.o among them). It records each
 * call, can fail one on demand, and otherwise does the real system call. */
static struct {
        int calls;
        dev_t dev;              /* of the file of the last call */
        ino_t ino;
        off_t size;             /* its size then: what the sync covered */
        int fail_errno;         /* fail the next call with this, once */
} syncs;

int fdatasync(int fd) {
        struct stat st;

        syncs.calls++;
        if (fstat(fd, &st) == 0) {
                syncs.dev = st.st_dev;
                syncs.ino = st.st_ino;
                syncs.size = st.st_size;
        } else {
                syncs.size = -1;
        }
        if (syncs.fail_errno) {
                errno = syncs.fail_errno;
                syncs.fail_errno = 0;
                return -1;
        }
        return (int)syscall(SYS_fdatasync, fd);
}

#define T_MTIME 1700000000123456789ull
#define T_HASH 0xdeadbeefcafef00dull

static char dir[64];
static char journal[96];

struct rec {
        char name[PROTO_NAME_MAX + 1];
        uint8_t kind;
        struct proto_ver ver;
        uint64_t made_ns;
};

struct recs {
        struct rec *r;
        size_t n, cap;
};

static void setup(void) {
        strcpy(dir, "/tmp/test_tomb.XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        snprintf(journal, sizeof(journal), "%s/journal", dir);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)type;
        (void)ftw;
        (void)remove(path);
        return 0;
}

static void teardown(void) {
        if (dir[0])
                (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        dir[0] = '\0';
}

TestSuite(tomb, .init = setup, .fini = teardown, .timeout = 30);

static void on_load(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct recs *rs = ctx;

        if (rs->n == rs->cap) {
                rs->cap = rs->cap ? 2 * rs->cap : 16;
                rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
                cr_assert_not_null(rs->r);
        }
        cr_assert_leq(strlen(name), PROTO_NAME_MAX);
        strcpy(rs->r[rs->n].name, name);
        rs->r[rs->n].kind = kind;
        rs->r[rs->n].ver = *v;
        rs->r[rs->n].made_ns = made_ns;
        rs->n++;
}

static void recs_free(struct recs *rs) {
        free(rs->r);
        *rs = (struct recs){ 0 };
}

static const struct rec *find(const struct recs *rs, const char *name) {
        for (size_t i = 0; i < rs->n; i++)
                if (strcmp(rs->r[i].name, name) == 0)
                        return &rs->r[i];
        return NULL;
}

static struct state *open_w(struct recs *rs) {
        struct state *s = NULL;
        int r = state_open(dir, on_load, rs, false, &s);

        cr_assert_eq(r, 0, "state_open: %s", strerror(-r));
        cr_assert_not_null(s);
        return s;
}

/* Reopen (as the writer) and return what loads; the store is closed again. */
static struct recs reload(void) {
        struct recs rs = { 0 };

        state_close(open_w(&rs));
        return rs;
}

static void put(struct state *s, const char *name, uint8_t kind, uint64_t mtime, uint64_t hash) {
        struct proto_ver v = { mtime, hash };
        int r = state_put(s, name, kind, &v);

        cr_assert_eq(r, 0, "put %s: %s", name, strerror(-r));
}

static void del(struct state *s, const char *name) {
        int r = state_del(s, name);

        cr_assert_eq(r, 0, "del %s: %s", name, strerror(-r));
}

static off_t journal_size(void) {
        struct stat st;

        cr_assert_eq(stat(journal, &st), 0, "stat %s: %s", journal, strerror(errno));
        return st.st_size;
}

static void append_raw(const char *text) {
        int fd = open(journal, O_WRONLY | O_APPEND | O_CLOEXEC);

        cr_assert_geq(fd, 0, "open %s: %s", journal, strerror(errno));
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

static char *slurp_journal(void) {
        off_t n = journal_size();
        char *buf = calloc(1, (size_t)n + 1);
        int fd = open(journal, O_RDONLY | O_CLOEXEC);

        cr_assert_not_null(buf);
        cr_assert_geq(fd, 0);
        cr_assert_eq(read(fd, buf, (size_t)n), (ssize_t)n);
        close(fd);
        return buf;
}

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void assert_rec(const struct recs *rs, const char *name, uint8_t kind, uint64_t mtime, uint64_t hash) {
        const struct rec *r = find(rs, name);

        cr_assert_not_null(r, "%s: not loaded", name);
        cr_assert_eq(r->kind, kind, "%s: kind %u, want %u", name, r->kind, kind);
        cr_assert_eq(r->ver.mtime_ns, mtime, "%s: mtime %" PRIu64 ", want %" PRIu64, name, r->ver.mtime_ns,
                     mtime);
        cr_assert_eq(r->ver.hash, hash, "%s: hash %016" PRIx64 ", want %016" PRIx64, name, r->ver.hash, hash);
}

/* ---- put, del, reopen ---- */

Test(tomb, fresh_dir_is_empty) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        struct stat st;

        cr_assert_eq(rs.n, 0);
        cr_assert_eq(stat(journal, &st), 0, "the journal is created at open");
        cr_assert_eq(st.st_mode & 0777, 0600);
        state_close(s);
        rs = reload();
        cr_assert_eq(rs.n, 0);
        recs_free(&rs);
}

Test(tomb, put_then_reopen) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        uint64_t t0 = now_ns(), t1;

        put(s, "sess_abc", PROTO_KIND_DESTROY, T_MTIME, T_HASH);
        put(s, "sess_A-b,9", PROTO_KIND_EXPIRE, 1, 0);
        put(s, "sess_max", PROTO_KIND_EXPIRE, UINT64_MAX, UINT64_MAX);
        t1 = now_ns();
        cr_assert_eq(state_sync(s), 0);
        state_close(s);

        rs = reload();
        cr_assert_eq(rs.n, 3);
        /* Journal order. */
        cr_assert_str_eq(rs.r[0].name, "sess_abc");
        cr_assert_str_eq(rs.r[1].name, "sess_A-b,9");
        cr_assert_str_eq(rs.r[2].name, "sess_max");
        assert_rec(&rs, "sess_abc", PROTO_KIND_DESTROY, T_MTIME, T_HASH);
        assert_rec(&rs, "sess_A-b,9", PROTO_KIND_EXPIRE, 1, 0);
        assert_rec(&rs, "sess_max", PROTO_KIND_EXPIRE, UINT64_MAX, UINT64_MAX);
        for (size_t i = 0; i < rs.n; i++)
                cr_assert(rs.r[i].made_ns >= t0 && rs.r[i].made_ns <= t1, "made_ns is the time of the put");
        recs_free(&rs);
}

Test(tomb, journal_format) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        char want[256], *text;
        uint64_t made;

        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 0xabc);
        del(s, "sess_a");
        state_close(s);

        /* The line layout is tomb.h's contract; made_ns is read back from it. */
        text = slurp_journal();
        cr_assert_eq(sscanf(text, "T 1 1700000000123456789 0000000000000abc %" SCNu64 " sess_a\n", &made), 1,
                     "journal: %s", text);
        snprintf(want, sizeof(want), "T 1 %" PRIu64 " %016" PRIx64 " %" PRIu64 " sess_a\nD sess_a\n", (uint64_t)T_MTIME,
                 (uint64_t)0xabc, made);
        cr_assert_str_eq(text, want);
        free(text);
        rs = reload();
        cr_assert_eq(rs.n, 0);
        recs_free(&rs);
}

Test(tomb, put_same_name_twice_last_wins) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_a", PROTO_KIND_EXPIRE, 10, 1);
        put(s, "sess_b", PROTO_KIND_EXPIRE, 20, 2);
        put(s, "sess_a", PROTO_KIND_DESTROY, 30, 3);
        state_close(s);
        rs = reload();
        cr_assert_eq(rs.n, 2);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, 30, 3);
        assert_rec(&rs, "sess_b", PROTO_KIND_EXPIRE, 20, 2);
        recs_free(&rs);
}

Test(tomb, del_then_reopen) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        put(s, "sess_b", PROTO_KIND_DESTROY, T_MTIME, 2);
        del(s, "sess_a");
        del(s, "sess_never");   /* deleting what is not there is harmless */
        state_close(s);
        rs = reload();
        cr_assert_eq(rs.n, 1);
        cr_assert_null(find(&rs, "sess_a"));
        assert_rec(&rs, "sess_b", PROTO_KIND_DESTROY, T_MTIME, 2);
        recs_free(&rs);

        /* Across reopens: put again after the delete. */
        s = open_w(&rs);
        recs_free(&rs);
        put(s, "sess_a", PROTO_KIND_EXPIRE, 5, 6);
        del(s, "sess_b");
        state_close(s);
        rs = reload();
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_a", PROTO_KIND_EXPIRE, 5, 6);
        recs_free(&rs);
}

/* A model of the live set, checked against what a reopen loads. */
#define MANY 300

struct model {
        bool live[MANY];
        uint8_t kind[MANY];
        uint64_t mtime[MANY];
};

static void model_check(const struct model *m, const struct recs *rs) {
        size_t want = 0;
        char name[32];

        for (size_t i = 0; i < MANY; i++) {
                snprintf(name, sizeof(name), "sess_%zu", i);
                if (!m->live[i]) {
                        cr_assert_null(find(rs, name), "%s was deleted", name);
                        continue;
                }
                want++;
                assert_rec(rs, name, m->kind[i], m->mtime[i], ~(uint64_t)i);
        }
        cr_assert_eq(rs->n, want, "%zu loaded, %zu live", rs->n, want);
}

static void model_put(struct model *m, struct state *s, size_t i, uint8_t kind, uint64_t mtime) {
        char name[32];

        snprintf(name, sizeof(name), "sess_%zu", i);
        put(s, name, kind, mtime, ~(uint64_t)i);
        m->live[i] = true;
        m->kind[i] = kind;
        m->mtime[i] = mtime;
}

static void model_del(struct model *m, struct state *s, size_t i) {
        char name[32];

        snprintf(name, sizeof(name), "sess_%zu", i);
        del(s, name);
        m->live[i] = false;
}

Test(tomb, many_puts_and_dels) {
        struct model m = { 0 };
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        unsigned seed = 12345;

        for (size_t i = 0; i < MANY; i++)
                model_put(&m, s, i, (i & 1) ? PROTO_KIND_EXPIRE : PROTO_KIND_DESTROY, T_MTIME + i);
        for (size_t i = 0; i < MANY; i += 3)
                model_del(&m, s, i);
        /* A deterministic shuffle of puts, re-puts and deletes. */
        for (int k = 0; k < 1000; k++) {
                size_t i;

                seed = seed * 1103515245u + 12345u;
                i = (seed >> 8) % MANY;
                if ((seed >> 20) & 1)
                        model_del(&m, s, i);
                else
                        model_put(&m, s, i, PROTO_KIND_DESTROY, T_MTIME + 1000000 + (uint64_t)k);
        }
        cr_assert_eq(state_sync(s), 0);
        state_close(s);

        rs = reload();
        model_check(&m, &rs);
        recs_free(&rs);
        /* And again after that reopen (which may have compacted). */
        rs = reload();
        model_check(&m, &rs);
        recs_free(&rs);
}

/* ---- crash leftovers ---- */

Test(tomb, torn_last_line_ignored) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs), *ro = NULL;
        off_t whole;

        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        put(s, "sess_b", PROTO_KIND_EXPIRE, T_MTIME, 2);
        state_close(s);
        whole = journal_size();
        append_raw("T 1 1700000000123456789 00000000000");   /* crash mid-append */

        cr_assert_eq(state_open(dir, on_load, &rs, true, &ro), 0);
        cr_assert_eq(rs.n, 2);
        state_close(ro);
        recs_free(&rs);
        cr_assert_gt(journal_size(), whole, "readonly leaves the file alone");

        rs = reload();
        cr_assert_eq(journal_size(), whole, "the writer cuts the torn tail off");
        cr_assert_eq(rs.n, 2);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        assert_rec(&rs, "sess_b", PROTO_KIND_EXPIRE, T_MTIME, 2);
        recs_free(&rs);
}

Test(tomb, torn_delete_is_not_applied) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s);
        append_raw("D sess_a");   /* no newline: never completed */

        rs = reload();
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        recs_free(&rs);
}

/* The writer reopens after a crash and keeps appending: what it appends
 * must not be glued onto the torn line and lost. */
Test(tomb, torn_last_line_then_append) {
        struct recs rs = { 0 };
        struct state *s;

        s = open_w(&rs);
        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s);
        append_raw("T 1 17000000001234");

        s = open_w(&rs);
        cr_assert_eq(rs.n, 1);
        recs_free(&rs);
        put(s, "sess_b", PROTO_KIND_DESTROY, T_MTIME + 1, 2);
        del(s, "sess_a");
        put(s, "sess_c", PROTO_KIND_EXPIRE, T_MTIME + 2, 3);
        state_close(s);

        rs = reload();
        cr_assert_null(find(&rs, "sess_a"), "the delete after the crash holds");
        assert_rec(&rs, "sess_b", PROTO_KIND_DESTROY, T_MTIME + 1, 2);
        assert_rec(&rs, "sess_c", PROTO_KIND_EXPIRE, T_MTIME + 2, 3);
        cr_assert_eq(rs.n, 2);
        recs_free(&rs);
}

Test(tomb, garbage_lines_skipped) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s);
        append_raw("hello world\n"
                   "\n"
                   "T\n"
                   "D\n"
                   "T 1 x 0000000000000001 1 sess_bad1\n"
                   "T 0 1 0000000000000001 1 sess_kind0\n"
                   "T 7 1 0000000000000001 1 sess_kind7\n"
                   "T 1 1 0000000000000001 1 a/b\n"
                   "T 1 1 0000000000000001 1 ..\n"
                   "T 1 1 0000000000000001\n"
                   "X sess_a\n"
                   "\x01\x02\xff\n");
        s = open_w(&rs);
        put(s, "sess_b", PROTO_KIND_EXPIRE, T_MTIME, 2);
        state_close(s);
        recs_free(&rs);

        rs = reload();
        cr_assert_eq(rs.n, 3, "%zu loaded", rs.n);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        assert_rec(&rs, "sess_b", PROTO_KIND_EXPIRE, T_MTIME, 2);
        /* Kind 0 is a live file record, valid since the journal holds them. */
        assert_rec(&rs, "sess_kind0", PROTO_KIND_FILE, 1, 1);
        recs_free(&rs);
}

/* ---- live files, boot id, runtime compaction ---- */

Test(tomb, live_file_records_roundtrip_and_lose_to_later_records) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_f", PROTO_KIND_FILE, T_MTIME, 7);
        put(s, "sess_g", PROTO_KIND_FILE, T_MTIME, 8);
        put(s, "sess_g", PROTO_KIND_DESTROY, T_MTIME + 1, 0);
        cr_assert_eq(state_sync(s), 0);
        state_close(s);
        recs_free(&rs);
        rs = reload();
        cr_assert_eq(rs.n, 2);
        assert_rec(&rs, "sess_f", PROTO_KIND_FILE, T_MTIME, 7);
        assert_rec(&rs, "sess_g", PROTO_KIND_DESTROY, T_MTIME + 1, 0);
        recs_free(&rs);
}

Test(tomb, new_boot_only_on_first_open_since_boot) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        char path[300];
        FILE *f;

        cr_assert(state_new_boot(s), "no boot id kept yet: a new boot");
        state_close(s);
        s = open_w(&rs);
        cr_assert_not(state_new_boot(s), "same boot");
        state_close(s);
        snprintf(path, sizeof(path), "%s/boot_id", dir);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs("00000000-0000-0000-0000-000000000000\n", f);
        fclose(f);
        s = open_w(&rs);
        cr_assert(state_new_boot(s), "another boot id was kept: the machine rebooted");
        state_close(s);
        recs_free(&rs);
}

struct iter { int i, n; char names[8][32]; };

static int iter_next(void *ctx, const char **name, uint8_t *kind, struct proto_ver *v, uint64_t *made) {
        struct iter *it = ctx;

        if (it->i >= it->n)
                return 0;
        *name = it->names[it->i];
        *kind = it->i % 2 ? PROTO_KIND_DESTROY : PROTO_KIND_FILE;
        *v = (struct proto_ver){ T_MTIME + (uint64_t)it->i, (uint64_t)it->i };
        *made = 42;
        it->i++;
        return 1;
}

Test(tomb, runtime_compaction_rewrites_from_callers_records) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        struct iter it = { .n = 4 };
        char name[32];

        for (int i = 0; i < 10000; i++) {
                snprintf(name, sizeof(name), "sess_x%d", i % 10);
                put(s, name, PROTO_KIND_FILE, T_MTIME + (uint64_t)i, (uint64_t)i);
        }
        cr_assert(state_want_compact(s, 10), "10000 records for 10 live");
        cr_assert_not(state_want_compact(s, 9000));
        for (int i = 0; i < it.n; i++)
                snprintf(it.names[i], sizeof(it.names[i]), "sess_k%d", i);
        cr_assert_eq(state_compact(s, iter_next, &it), 0);
        cr_assert_not(state_want_compact(s, 4));
        put(s, "sess_after", PROTO_KIND_EXPIRE, T_MTIME, 9);
        state_close(s);
        recs_free(&rs);
        rs = reload();
        cr_assert_eq(rs.n, 5, "%zu loaded", rs.n);
        assert_rec(&rs, "sess_k0", PROTO_KIND_FILE, T_MTIME, 0);
        assert_rec(&rs, "sess_k1", PROTO_KIND_DESTROY, T_MTIME + 1, 1);
        assert_rec(&rs, "sess_after", PROTO_KIND_EXPIRE, T_MTIME, 9);
        recs_free(&rs);
}

/* ---- one writer per state_dir ---- */

Test(tomb, second_writer_busy) {
        struct recs rs = { 0 };
        struct state *s1 = open_w(&rs), *s2 = NULL;

        put(s1, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        cr_assert_eq(state_open(dir, on_load, &rs, false, &s2), -EBUSY);
        cr_assert_null(s2, "*ret written only on success");
        cr_assert_eq(rs.n, 0, "a refused open loads nothing");
        state_close(s1);

        cr_assert_eq(state_open(dir, on_load, &rs, false, &s2), 0);
        cr_assert_not_null(s2);
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s2);
        recs_free(&rs);
}

Test(tomb, readonly_beside_writer) {
        struct recs rs = { 0 }, ro_rs = { 0 };
        struct state *w = open_w(&rs), *ro = NULL;
        struct proto_ver v = { 1, 2 };
        off_t size;

        put(w, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        put(w, "sess_b", PROTO_KIND_EXPIRE, T_MTIME, 2);
        del(w, "sess_b");
        size = journal_size();

        cr_assert_eq(state_open(dir, on_load, &ro_rs, true, &ro), 0, "readonly needs no lock");
        cr_assert_not_null(ro);
        cr_assert_eq(ro_rs.n, 1, "sees what the writer appended");
        assert_rec(&ro_rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        cr_assert_eq(state_put(ro, "sess_c", PROTO_KIND_DESTROY, &v), -EROFS);
        cr_assert_eq(state_del(ro, "sess_a"), -EROFS);
        cr_assert_eq(state_sync(ro), 0);
        state_close(ro);
        cr_assert_eq(journal_size(), size, "readonly wrote nothing");

        /* The writer carries on undisturbed. */
        put(w, "sess_d", PROTO_KIND_DESTROY, T_MTIME, 4);
        state_close(w);
        recs_free(&ro_rs);
        rs = reload();
        cr_assert_eq(rs.n, 2);
        cr_assert_not_null(find(&rs, "sess_a"));
        cr_assert_not_null(find(&rs, "sess_d"));
        recs_free(&rs);
}

Test(tomb, readonly_takes_no_lock) {
        struct recs rs = { 0 };
        struct state *ro = NULL, *w;

        state_close(open_w(&rs));   /* the journal exists */
        cr_assert_eq(state_open(dir, on_load, &rs, true, &ro), 0);
        w = open_w(&rs);   /* a daemon may start beside a --full-sync */
        state_close(w);
        state_close(ro);
        recs_free(&rs);
}

Test(tomb, readonly_missing_state_dir) {
        struct recs rs = { 0 };
        struct state *ro = NULL;
        struct proto_ver v = { 1, 2 };
        char missing[128];
        struct stat st;

        snprintf(missing, sizeof(missing), "%s/nope", dir);
        cr_assert_eq(state_open(missing, on_load, &rs, true, &ro), 0);
        cr_assert_not_null(ro);
        cr_assert_eq(rs.n, 0);
        cr_assert_eq(state_put(ro, "sess_a", PROTO_KIND_DESTROY, &v), -EROFS);
        cr_assert_eq(state_del(ro, "sess_a"), -EROFS);
        cr_assert_eq(state_sync(ro), 0);
        state_close(ro);
        cr_assert_neq(stat(missing, &st), 0, "readonly creates nothing");

        /* An existing dir without a journal: empty too, and still nothing
         * created. */
        ro = NULL;
        cr_assert_eq(state_open(dir, on_load, &rs, true, &ro), 0);
        cr_assert_eq(rs.n, 0);
        state_close(ro);
        cr_assert_neq(stat(journal, &st), 0);
}

Test(tomb, writer_missing_state_dir) {
        struct state *s = NULL;
        char missing[128];

        snprintf(missing, sizeof(missing), "%s/nope", dir);
        cr_assert_eq(state_open(missing, NULL, NULL, false, &s), -ENOENT);
        cr_assert_null(s);
}

Test(tomb, null_callback_and_close) {
        struct state *s = NULL;

        cr_assert_eq(state_open(dir, NULL, NULL, false, &s), 0);
        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s);
        s = NULL;
        cr_assert_eq(state_open(dir, NULL, NULL, false, &s), 0);
        state_close(s);
        state_close(NULL);
        cr_assert_eq(state_sync(NULL), 0);
}

/* The last fdatasync was of the journal, as it is now on disk. */
static void assert_synced_journal(int calls, const char *what) {
        struct stat st;

        cr_assert_eq(syncs.calls, calls, "%s: %d fdatasync calls, want %d", what, syncs.calls, calls);
        cr_assert_eq(stat(journal, &st), 0);
        cr_assert(syncs.dev == st.st_dev && syncs.ino == st.st_ino, "%s: fdatasync of another file", what);
        cr_assert_eq(syncs.size, st.st_size, "%s: synced at %lld bytes, the journal has %lld: written after the sync",
                     what, (long long)syncs.size, (long long)st.st_size);
}

Test(tomb, sync) {
        struct recs rs = { 0 }, ro_rs = { 0 };
        struct state *s = open_w(&rs), *ro = NULL;
        const char *tail = "\nD sess_a\n";
        char want[256], *text;
        size_t len;
        uint64_t made;

        memset(&syncs, 0, sizeof(syncs));
        cr_assert_eq(state_sync(s), 0, "nothing to sync");
        cr_assert_eq(syncs.calls, 0, "nothing appended: no fdatasync");

        /* A tombstone: written, then made durable by one fdatasync of the
         * journal that covers it. */
        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 0xabc);
        cr_assert_eq(state_sync(s), 0);
        assert_synced_journal(1, "after a tombstone");
        text = slurp_journal();
        cr_assert_eq(sscanf(text, "T 1 1700000000123456789 0000000000000abc %" SCNu64 " sess_a\n", &made), 1,
                     "journal: %s", text);
        snprintf(want, sizeof(want), "T 1 %" PRIu64 " %016" PRIx64 " %" PRIu64 " sess_a\n", (uint64_t)T_MTIME,
                 (uint64_t)0xabc, made);
        cr_assert_str_eq(text, want);
        free(text);

        cr_assert_eq(state_sync(s), 0);
        cr_assert_eq(syncs.calls, 1, "nothing new since the last sync: no second fdatasync");

        /* On disk for another open, while the writer still holds it. */
        cr_assert_eq(state_open(dir, on_load, &ro_rs, true, &ro), 0);
        cr_assert_eq(ro_rs.n, 1);
        assert_rec(&ro_rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 0xabc);
        cr_assert_eq(ro_rs.r[0].made_ns, made);
        state_close(ro);
        recs_free(&ro_rs);

        /* A live file record need not survive power loss: no sync for it. */
        put(s, "sess_f", PROTO_KIND_FILE, T_MTIME, 7);
        cr_assert_eq(state_sync(s), 0);
        cr_assert_eq(syncs.calls, 1, "a file record alone is not synced");

        /* Forgetting a tombstone is synced too, and covers what came before. */
        del(s, "sess_a");
        cr_assert_eq(state_sync(s), 0);
        assert_synced_journal(2, "after a delete");
        text = slurp_journal();
        len = strlen(text);
        cr_assert(len > strlen(tail) && strcmp(text + len - strlen(tail), tail) == 0, "journal: %s", text);
        free(text);

        /* A failed fdatasync is reported, and the next sync tries again. */
        put(s, "sess_b", PROTO_KIND_EXPIRE, T_MTIME + 1, 2);
        syncs.fail_errno = EIO;
        cr_assert_eq(state_sync(s), -EIO);
        cr_assert_eq(syncs.calls, 3);
        cr_assert_eq(state_sync(s), 0);
        assert_synced_journal(4, "the retry after EIO");
        state_close(s);
        cr_assert_eq(syncs.calls, 4, "close: nothing left to sync");

        rs = reload();
        cr_assert_eq(rs.n, 2, "%zu loaded", rs.n);
        cr_assert_null(find(&rs, "sess_a"));
        assert_rec(&rs, "sess_f", PROTO_KIND_FILE, T_MTIME, 7);
        assert_rec(&rs, "sess_b", PROTO_KIND_EXPIRE, T_MTIME + 1, 2);
        recs_free(&rs);
}

/* State_close makes pending tombstones durable: a daemon that exits right
 * after a delete must not leave it to the page cache. */
Test(tomb, close_syncs_pending_tombstone) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        memset(&syncs, 0, sizeof(syncs));
        put(s, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        state_close(s);
        cr_assert_eq(syncs.calls, 1, "close with an unsynced tombstone: %d fdatasync calls", syncs.calls);
        rs = reload();
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_a", PROTO_KIND_DESTROY, T_MTIME, 1);
        recs_free(&rs);
}

/* ---- compaction at open ---- */

Test(tomb, compaction_shrinks_and_keeps) {
        struct model m = { 0 };
        struct recs rs = { 0 }, before = { 0 };
        struct state *s = open_w(&rs);
        off_t big, small;
        struct stat st;
        char newf[128];

        /* 10 live of 10 + 2*100 records: past 2*live + 64. */
        for (size_t i = 0; i < 10; i++)
                model_put(&m, s, i, PROTO_KIND_DESTROY, T_MTIME + i);
        for (size_t k = 0; k < 100; k++) {
                model_put(&m, s, 10 + k % 50, PROTO_KIND_EXPIRE, T_MTIME);
                model_del(&m, s, 10 + k % 50);
        }
        state_close(s);
        big = journal_size();

        s = open_w(&before);   /* compacts */
        model_check(&m, &before);
        small = journal_size();
        cr_assert_lt(small, big, "compacted: %lld -> %lld bytes", (long long)small, (long long)big);
        snprintf(newf, sizeof(newf), "%s/journal.new", dir);
        cr_assert_neq(stat(newf, &st), 0, "no temp file left");

        /* The writer appends to the new journal, not the replaced one. */
        model_put(&m, s, 42, PROTO_KIND_EXPIRE, 4242);
        model_del(&m, s, 3);
        state_close(s);
        cr_assert_gt(journal_size(), small);

        rs = reload();
        model_check(&m, &rs);
        /* Compaction keeps each record's made_ns: expiry of tombstones
         * counts from the delete, not from the last restart. */
        for (size_t i = 0; i < before.n; i++) {
                const struct rec *r = find(&rs, before.r[i].name);
                if (r)
                        cr_assert_eq(r->made_ns, before.r[i].made_ns, "%s", r->name);
        }
        recs_free(&rs);
        recs_free(&before);
}

Test(tomb, compaction_to_empty) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        char name[32];

        for (int i = 0; i < 40; i++) {
                snprintf(name, sizeof(name), "sess_%d", i);
                put(s, name, PROTO_KIND_DESTROY, T_MTIME, 1);
                del(s, name);
        }
        state_close(s);
        rs = reload();
        cr_assert_eq(rs.n, 0);
        cr_assert_eq(journal_size(), 0, "no live records: an empty journal");
        recs_free(&rs);
}

Test(tomb, no_compaction_below_threshold) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        char name[32];
        off_t size;

        /* 1 live of 66 records: exactly 2*live + 64, not past it. */
        put(s, "sess_keep", PROTO_KIND_DESTROY, T_MTIME, 1);
        for (int i = 0; i < 65; i++) {
                snprintf(name, sizeof(name), "sess_%d", i);
                del(s, name);
        }
        state_close(s);
        size = journal_size();
        rs = reload();
        cr_assert_eq(rs.n, 1);
        cr_assert_eq(journal_size(), size, "journal left as it is");
        recs_free(&rs);
}

Test(tomb, readonly_never_compacts) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs), *ro = NULL;
        char name[32];
        off_t size;

        for (int i = 0; i < 100; i++) {
                snprintf(name, sizeof(name), "sess_%d", i);
                put(s, name, PROTO_KIND_DESTROY, T_MTIME, 1);
                del(s, name);
        }
        put(s, "sess_keep", PROTO_KIND_EXPIRE, T_MTIME, 7);
        state_close(s);
        size = journal_size();
        cr_assert_eq(state_open(dir, on_load, &rs, true, &ro), 0);
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_keep", PROTO_KIND_EXPIRE, T_MTIME, 7);
        state_close(ro);
        cr_assert_eq(journal_size(), size);
        recs_free(&rs);
}

Test(tomb, applying_records_load_as_their_own_kind_and_are_superseded) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);

        put(s, "sess_a", STATE_KIND_APPLYING, T_MTIME, 1);
        put(s, "sess_b", STATE_KIND_APPLYING, T_MTIME, 2);
        put(s, "sess_b", PROTO_KIND_FILE, T_MTIME, 2);   /* the apply finished */
        state_close(s);
        recs_free(&rs);
        rs = reload();
        cr_assert_eq(rs.n, 2);
        assert_rec(&rs, "sess_a", STATE_KIND_APPLYING, T_MTIME, 1);
        assert_rec(&rs, "sess_b", PROTO_KIND_FILE, T_MTIME, 2);
        recs_free(&rs);
}

/* ---- compaction never writes through a name someone put there ---- */

/* An outside file, and journal.new made a link to it (symlink or hard
 * link), as a user who could write into state_dir would plant it. */
struct planted {
        char dir[64], file[96], newf[96];
        struct stat st;
};

static void plant(struct planted *p, bool hard) {
        FILE *f;
        struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 789 } };

        strcpy(p->dir, "/tmp/test_tomb_outside.XXXXXX");
        cr_assert_not_null(mkdtemp(p->dir));
        snprintf(p->file, sizeof(p->file), "%s/victim", p->dir);
        f = fopen(p->file, "w");
        cr_assert_not_null(f);
        fputs("root:x:0:0\n", f);
        fclose(f);
        cr_assert_eq(utimensat(AT_FDCWD, p->file, ts, 0), 0);
        cr_assert_eq(stat(p->file, &p->st), 0);
        snprintf(p->newf, sizeof(p->newf), "%s/journal.new", dir);
        if (hard)
                cr_assert_eq(link(p->file, p->newf), 0, "link: %s", strerror(errno));
        else
                cr_assert_eq(symlink(p->file, p->newf), 0, "symlink: %s", strerror(errno));
}

static void assert_untouched(struct planted *p) {
        struct stat st;
        char buf[64] = "";
        FILE *f = fopen(p->file, "r");

        cr_assert_not_null(f);
        cr_assert_not_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        cr_assert_str_eq(buf, "root:x:0:0\n", "the outside file's bytes are unchanged");
        cr_assert_eq(stat(p->file, &st), 0);
        cr_assert_eq(st.st_size, p->st.st_size);
        cr_assert_eq(st.st_mtim.tv_sec, p->st.st_mtim.tv_sec, "the outside file's mtime is unchanged");
        cr_assert_eq(st.st_mtim.tv_nsec, p->st.st_mtim.tv_nsec);
        cr_assert_eq(st.st_mode, p->st.st_mode, "and its mode");
        cr_assert_eq(lstat(journal, &st), 0);
        cr_assert(S_ISREG(st.st_mode), "the journal is a regular file, not the planted link");
        cr_assert_eq(st.st_nlink, 1, "with one name");
        cr_assert_neq(lstat(p->newf, &st), 0, "no journal.new left");
}

static void unplant(struct planted *p) {
        (void)unlink(p->file);
        (void)rmdir(p->dir);
}

static void runtime_compaction_through(bool hard) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        struct iter it = { .n = 2 };
        struct planted p;
        char name[32];

        for (int i = 0; i < 5000; i++) {   /* past 2 * live + the slack */
                snprintf(name, sizeof(name), "sess_x%d", i % 10);
                put(s, name, PROTO_KIND_FILE, T_MTIME + (uint64_t)i, (uint64_t)i);
        }
        cr_assert(state_want_compact(s, 2));
        plant(&p, hard);
        strcpy(it.names[0], "sess_k0");
        strcpy(it.names[1], "sess_k1");
        cr_assert_eq(state_compact(s, iter_next, &it), 0, "compaction replaces the planted name");
        state_close(s);
        assert_untouched(&p);
        rs = reload();
        cr_assert_eq(rs.n, 2, "%zu loaded", rs.n);
        assert_rec(&rs, "sess_k0", PROTO_KIND_FILE, T_MTIME, 0);
        assert_rec(&rs, "sess_k1", PROTO_KIND_DESTROY, T_MTIME + 1, 1);
        recs_free(&rs);
        assert_untouched(&p);
        unplant(&p);
}

Test(tomb, runtime_compaction_never_follows_a_planted_journal_new_symlink) {
        runtime_compaction_through(false);
}

Test(tomb, runtime_compaction_never_writes_a_planted_journal_new_hard_link) {
        runtime_compaction_through(true);
}

Test(tomb, compaction_at_open_never_follows_a_planted_journal_new_symlink) {
        struct recs rs = { 0 };
        struct state *s = open_w(&rs);
        struct planted p;
        char name[32];
        off_t big;

        for (int i = 0; i < 100; i++) {
                snprintf(name, sizeof(name), "sess_%d", i);
                put(s, name, PROTO_KIND_DESTROY, T_MTIME, 1);
                del(s, name);
        }
        put(s, "sess_keep", PROTO_KIND_EXPIRE, T_MTIME, 7);
        state_close(s);
        big = journal_size();
        plant(&p, false);
        rs = reload();   /* compacts at open */
        cr_assert_lt(journal_size(), big, "it did compact");
        cr_assert_eq(rs.n, 1);
        assert_rec(&rs, "sess_keep", PROTO_KIND_EXPIRE, T_MTIME, 7);
        recs_free(&rs);
        assert_untouched(&p);
        unplant(&p);
}
