/* lib/sess: session names, reading under PHP's lock, applying in place
 * (docs/DESIGN.md "What PHP does, and what follows").
 *
 * Each test gets a fresh directory under /tmp (a small tmpfs mounted over it
 * for the ENOSPC cases); .fini unmounts and removes it even when an
 * assertion fails. PHP's request is played by a second open() + flock() in
 * the test: flock locks belong to the open file description, so it competes
 * with sess_open's own open() in the same process exactly as PHP would. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/sess.h"

#define T_MTIME 1700000000123456789ull   /* an mtime with every ns digit set */
#define T_MAX (1u << 20)

static char dir[64];
static int dfd = -1;
static bool mounted;

static void setup(void) {
        strcpy(dir, "/tmp/test_sess.XXXXXX");
        cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
        dfd = sess_dir_open(dir);
        cr_assert_geq(dfd, 0, "sess_dir_open: %s", strerror(-dfd));
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)type;
        (void)ftw;
        (void)remove(path);
        return 0;
}

static void teardown(void) {
        if (dfd >= 0)
                close(dfd);
        dfd = -1;
        if (mounted)
                (void)umount2(dir, MNT_DETACH);
        mounted = false;
        if (dir[0])
                (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        dir[0] = '\0';
}

TestSuite(sess, .init = setup, .fini = teardown, .timeout = 20);

/* Mount a 256 KiB tmpfs over the test directory and reopen dfd on it. */
static void mount_small(void) {
        close(dfd);
        dfd = -1;
        if (mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700") < 0) {
                int e = errno;

                teardown();   /* a skipped test does not run .fini */
                cr_skip_test("mount tmpfs: %s (the ENOSPC tests need root)", strerror(e));
        }
        mounted = true;
        dfd = sess_dir_open(dir);
        cr_assert_geq(dfd, 0, "sess_dir_open: %s", strerror(-dfd));
}

static void put_file(const char *name, const void *data, size_t len) {
        int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        cr_assert_geq(fd, 0, "create %s: %s", name, strerror(errno));
        cr_assert_eq(write(fd, data, len), (ssize_t)len, "write %s: %s", name, strerror(errno));
        close(fd);
}

static void put_str(const char *name, const char *s) {
        put_file(name, s, strlen(s));
}

static void set_times(const char *name, uint64_t atime_ns, uint64_t mtime_ns) {
        struct timespec ts[2] = {
                { .tv_sec = (time_t)(atime_ns / 1000000000ull), .tv_nsec = (long)(atime_ns % 1000000000ull) },
                { .tv_sec = (time_t)(mtime_ns / 1000000000ull), .tv_nsec = (long)(mtime_ns % 1000000000ull) },
        };
        cr_assert_eq(utimensat(dfd, name, ts, 0), 0, "utimensat %s: %s", name, strerror(errno));
}

static struct stat stat_of(const char *name) {
        struct stat st;

        cr_assert_eq(fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW), 0, "stat %s: %s", name, strerror(errno));
        return st;
}

static uint64_t mtime_of(const char *name) {
        struct stat st = stat_of(name);

        return sess_ts_ns(&st.st_mtim);
}

static bool exists(const char *name) {
        struct stat st;

        return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The whole file, malloc'd (at least one byte so memcmp is always valid). */
static uint8_t *slurp(const char *name, size_t *ret_len) {
        struct stat st = stat_of(name);
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        cr_assert_not_null(buf);
        cr_assert_geq(fd, 0, "open %s: %s", name, strerror(errno));
        cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), (ssize_t)st.st_size);
        close(fd);
        *ret_len = (size_t)st.st_size;
        return buf;
}

static void assert_content(const char *name, const void *want, size_t want_len) {
        size_t len;
        uint8_t *got = slurp(name, &len);

        cr_assert_eq(len, want_len, "%s: %zu bytes, want %zu", name, len, want_len);
        cr_assert(want_len == 0 || memcmp(got, want, want_len) == 0, "%s: content differs", name);
        free(got);
}

/* An open file description of name holding flock(op), like a PHP request. */
static int php_lock(const char *name, int op) {
        int fd = openat(dfd, name, O_RDWR | O_CLOEXEC);

        cr_assert_geq(fd, 0, "open %s: %s", name, strerror(errno));
        cr_assert_eq(flock(fd, op | LOCK_NB), 0, "flock %s: %s", name, strerror(errno));
        return fd;
}

/* Whether another open file description could take flock(op) right now. */
static bool can_lock(const char *name, int op) {
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC), r;

        cr_assert_geq(fd, 0, "open %s: %s", name, strerror(errno));
        r = flock(fd, op | LOCK_NB);
        cr_assert(r == 0 || errno == EWOULDBLOCK, "flock: %s", strerror(errno));
        close(fd);
        return r == 0;
}

static uint8_t *pattern(size_t len, unsigned seed) {
        uint8_t *p = malloc(len + 1);

        cr_assert_not_null(p);
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)((i * 31 + seed) ^ (i >> 8));
        return p;
}

/* ---- names and hashes ---- */

Test(sess, name_valid) {
        char max[PROTO_NAME_MAX + 1];

        cr_assert(sess_name_valid("sess_abc", SESS_FORMAT_PHP, "sess_"));
        cr_assert(sess_name_valid("sess_A-b,9", SESS_FORMAT_PHP, "sess_"));
        cr_assert(sess_name_valid("sess_x", SESS_FORMAT_PHP, "sess_"));
        cr_assert(sess_name_valid("sess_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-",
                                  SESS_FORMAT_PHP, "sess_"));
        memcpy(max, "sess_", 5);
        memset(max + 5, 'a', PROTO_NAME_MAX - 5);
        max[PROTO_NAME_MAX] = '\0';
        cr_assert(sess_name_valid(max, SESS_FORMAT_PHP, "sess_"), "255 bytes is NAME_MAX: valid");
}

Test(sess, name_invalid) {
        static const char *const bad[] = {
                "",           "sess_",      "sess",       "sess_a/b",  "sess_..",  "sess_.",
                "sess_a.b",   "sess_a b",   "sess_a\n",   "sess_a\tb", "Sess_abc", "ses_abc",
                "xsess_abc",  "/sess_abc",  "sess_/abc",  "sess_a_b",  "sess_é",   "sess_abc~",
                "sess_a:b",   "sess_a*",    "sess_a\\b",
        };
        char big[PROTO_NAME_MAX + 2];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert(!sess_name_valid(bad[i], SESS_FORMAT_PHP, "sess_"), "\"%s\" must be invalid", bad[i]);
        memcpy(big, "sess_", 5);
        memset(big + 5, 'a', PROTO_NAME_MAX + 1 - 5);
        big[PROTO_NAME_MAX + 1] = '\0';
        cr_assert_eq(strlen(big), 256);
        cr_assert(!sess_name_valid(big, SESS_FORMAT_PHP, "sess_"), "256 bytes is over NAME_MAX");
}

Test(sess, name_other_prefix) {
        cr_assert(sess_name_valid("PHPSESS_abc", SESS_FORMAT_PHP, "PHPSESS_"));
        cr_assert(sess_name_valid("myapp-9,x", SESS_FORMAT_PHP, "myapp-"));
        cr_assert(!sess_name_valid("sess_abc", SESS_FORMAT_PHP, "PHPSESS_"));
        cr_assert(!sess_name_valid("PHPSESS_abc", SESS_FORMAT_PHP, "sess_"));
        cr_assert(!sess_name_valid("PHPSESS_", SESS_FORMAT_PHP, "PHPSESS_"));
        cr_assert(!sess_name_valid("PHPSESS", SESS_FORMAT_PHP, "PHPSESS_"));
        cr_assert(!sess_name_valid("PHPSESS_a.b", SESS_FORMAT_PHP, "PHPSESS_"));
}

/* Laravel: Str::random(40), checked by Store::isValidId as ctype_alnum
 * and exactly 40 long; the file name is the bare id. */
Test(sess, name_laravel) {
        static const char ok40[] = "aB3dEf7hIjKlMnOpQrStUvWxYz0123456789ABCD";
        static const char *const bad[] = {
                "aB3dEf7hIjKlMnOpQrStUvWxYz0123456789ABC",    /* 39 */
                "aB3dEf7hIjKlMnOpQrStUvWxYz0123456789ABCDE",  /* 41 */
                "aB3dEf7hIjKlMnOpQrStUvWxYz0123456789AB-D",   /* not alnum */
                "aB3dEf7hIjKlMnOpQrStUvWxYz0123456789AB,D",
                ".gitignore", "", "sess_abc",
        };

        cr_assert_eq(strlen(ok40), 40);
        cr_assert(sess_name_valid(ok40, SESS_FORMAT_LARAVEL, ""));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                cr_assert(!sess_name_valid(bad[i], SESS_FORMAT_LARAVEL, ""), "\"%s\" must be invalid", bad[i]);
        /* A prefix never goes with laravel (the config refuses one). */
        cr_assert(!sess_name_valid(ok40, SESS_FORMAT_LARAVEL, "aB"));
        /* A PHP node does not take Laravel's names, nor the reverse. */
        cr_assert(!sess_name_valid(ok40, SESS_FORMAT_PHP, "sess_"));
}

/* CodeIgniter 4: the cookie name, then (matchIP) md5 of the address, then
 * the id, 32 of [0-9a-f] (FileHandler::configureSessionIDRegex). */
Test(sess, name_codeigniter4) {
        static const char id[] = "0123456789abcdef0123456789abcdef";
        char name[128];

        snprintf(name, sizeof(name), "ci_session%s", id);
        cr_assert(sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"));
        snprintf(name, sizeof(name), "ci_session%s%s", "d41d8cd98f00b204e9800998ecf8427e", id);
        cr_assert(sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"), "matchIP: md5 + id");
        snprintf(name, sizeof(name), "ci_session%.31s", id);
        cr_assert(!sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"), "31 hex");
        snprintf(name, sizeof(name), "ci_session%sa", id);
        cr_assert(!sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"), "33 hex");
        snprintf(name, sizeof(name), "ci_session0123456789ABCDEF0123456789abcdef");
        cr_assert(!sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"), "upper case is not PHP's hex");
        snprintf(name, sizeof(name), "ci_session0123456789abcdeg0123456789abcdef");
        cr_assert(!sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"), "not hex");
        snprintf(name, sizeof(name), "myapp%s", id);
        cr_assert(sess_name_valid(name, SESS_FORMAT_CI4, "myapp"), "another cookie name");
        cr_assert(!sess_name_valid(name, SESS_FORMAT_CI4, "ci_session"));
        cr_assert(!sess_name_valid("ci_session", SESS_FORMAT_CI4, "ci_session"));
}

Test(sess, hash_is_xxh3_64) {
        /* Pinned values: every node must compute the same hash (versions
         * and delta checks compare them across the wire). */
        cr_assert_eq(sess_hash("", 0), 0x2d06800538d394c2ull);
        cr_assert_eq(sess_hash(NULL, 0), 0x2d06800538d394c2ull);
        cr_assert_eq(sess_hash("abc", 3), 0x78af5f94892f3950ull);
        cr_assert_neq(sess_hash("abd", 3), sess_hash("abc", 3));
}

/* ---- sess_open: what is refused ---- */

Test(sess, open_missing) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_open(dfd, "sess_none", SESS_SHARED, T_MAX, &f), -ENOENT);
        cr_assert_eq(f.fd, -1);
        cr_assert_eq(sess_open(dfd, "sess_none", SESS_EXCL, T_MAX, &f), -ENOENT);
        cr_assert_eq(f.fd, -1);
        cr_assert(!exists("sess_none"), "without SESS_CREATE nothing is created");
}

Test(sess, open_symlink_never_followed) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_target", "secret");
        set_times("sess_target", T_MTIME, T_MTIME);
        cr_assert_eq(symlinkat("sess_target", dfd, "sess_link"), 0);
        cr_assert_eq(symlinkat("/etc/passwd", dfd, "sess_abs"), 0);
        cr_assert_eq(symlinkat("sess_nowhere", dfd, "sess_dangling"), 0);

        cr_assert_eq(sess_open(dfd, "sess_link", SESS_SHARED, T_MAX, &f), -ELOOP);
        cr_assert_eq(sess_open(dfd, "sess_abs", SESS_SHARED, T_MAX, &f), -ELOOP);
        cr_assert_eq(sess_open(dfd, "sess_link", SESS_EXCL, T_MAX, &f), -ELOOP);
        cr_assert_eq(sess_open(dfd, "sess_link", SESS_EXCL | SESS_CREATE, T_MAX, &f), -ELOOP);
        cr_assert_eq(sess_open(dfd, "sess_dangling", SESS_EXCL | SESS_CREATE, T_MAX, &f), -ELOOP);
        cr_assert_eq(f.fd, -1);

        /* Nothing was created or changed through a link. */
        cr_assert(!exists("sess_nowhere"));
        cr_assert(S_ISLNK(stat_of("sess_link").st_mode));
        cr_assert(S_ISLNK(stat_of("sess_dangling").st_mode));
        assert_content("sess_target", "secret", 6);
        cr_assert_eq(mtime_of("sess_target"), T_MTIME);
}

Test(sess, open_directory) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(mkdirat(dfd, "sess_dir", 0700), 0);
        cr_assert_eq(sess_open(dfd, "sess_dir", SESS_SHARED, T_MAX, &f), -EISDIR);
        cr_assert_eq(sess_open(dfd, "sess_dir", SESS_EXCL, T_MAX, &f), -EISDIR);
        cr_assert_eq(sess_open(dfd, "sess_dir", SESS_EXCL | SESS_CREATE, T_MAX, &f), -EISDIR);
        cr_assert_eq(f.fd, -1);
        cr_assert(S_ISDIR(stat_of("sess_dir").st_mode));
}

/* The type is looked at after flock (one fstat per read): a directory
 * someone holds locked is still a directory, not a busy session. */
Test(sess, open_locked_directory_is_no_busy_session) {
        struct sess_file f = SESS_FILE_INIT;
        int lfd;

        cr_assert_eq(mkdirat(dfd, "sess_ldir", 0700), 0);
        lfd = openat(dfd, "sess_ldir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cr_assert_geq(lfd, 0);
        cr_assert_eq(flock(lfd, LOCK_EX), 0);
        cr_assert_eq(sess_open(dfd, "sess_ldir", SESS_SHARED, T_MAX, &f), -EISDIR);
        cr_assert_eq(f.fd, -1);
        close(lfd);
}

static void on_alarm(int sig) {
        (void)sig;
}

/* A FIFO with no writer would block a plain open(O_RDONLY) forever. An
 * alarm without SA_RESTART turns a block into -EINTR, so the test fails
 * (and cleans up) instead of hanging until the suite's timeout. */
Test(sess, open_fifo_never_blocks) {
        struct sigaction sa = { .sa_handler = on_alarm };
        struct sess_file f = SESS_FILE_INIT;
        int r;

        cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
        alarm(5);
        cr_assert_eq(mkfifoat(dfd, "sess_fifo", 0600), 0);
        r = sess_open(dfd, "sess_fifo", SESS_SHARED, T_MAX, &f);
        cr_assert_lt(r, 0, "a FIFO is not a session file");
        cr_assert_eq(r, -EINVAL, "got %d (%s)", r, strerror(-r));
        r = sess_open(dfd, "sess_fifo", SESS_EXCL | SESS_CREATE, T_MAX, &f);
        cr_assert_eq(r, -EINVAL, "got %d (%s)", r, strerror(-r));
        cr_assert_eq(f.fd, -1);
        cr_assert(S_ISFIFO(stat_of("sess_fifo").st_mode), "the FIFO is left alone");
        alarm(0);
}

Test(sess, open_too_large) {
        struct sess_file f = SESS_FILE_INIT;
        uint8_t *p = pattern(100, 1);

        put_file("sess_big", p, 100);
        cr_assert_eq(sess_open(dfd, "sess_big", SESS_SHARED, 99, &f), -EFBIG);
        cr_assert_eq(f.len, 100, "f.len holds the size for the log");
        cr_assert_eq(f.fd, -1);
        cr_assert_null(f.data);
        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open(dfd, "sess_big", SESS_EXCL, 0, &f), -EFBIG);
        cr_assert_eq(f.len, 100);
        cr_assert_eq(f.fd, -1);
        cr_assert(can_lock("sess_big", LOCK_EX), "a refused open keeps no lock");

        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open(dfd, "sess_big", SESS_SHARED, 100, &f), 0, "max itself is allowed");
        cr_assert_eq(f.len, 100);
        cr_assert_eq(memcmp(f.data, p, 100), 0);
        sess_release(dfd, "sess_big", &f);
        assert_content("sess_big", p, 100);
        free(p);
}

/* ---- sess_open: content and version ---- */

Test(sess, open_content_and_version) {
        struct sess_file f = SESS_FILE_INIT;
        const char *content = "a|s:3:\"foo\";n|i:42;";
        size_t len = strlen(content);
        struct stat st;

        put_str("sess_abc", content);
        set_times("sess_abc", T_MTIME - 5, T_MTIME);
        st = stat_of("sess_abc");

        cr_assert_eq(sess_open(dfd, "sess_abc", SESS_SHARED, T_MAX, &f), 0);
        cr_assert_geq(f.fd, 0);
        cr_assert_eq(f.len, len);
        cr_assert_not_null(f.data);
        cr_assert_eq(memcmp(f.data, content, len), 0);
        cr_assert_eq(f.ver.mtime_ns, sess_ts_ns(&st.st_mtim));
        cr_assert_eq(f.ver.mtime_ns, T_MTIME);
        cr_assert_eq(f.ver.hash, sess_hash(content, len));
        cr_assert_eq(f.dev, st.st_dev);
        cr_assert_eq(f.ino, st.st_ino);
        cr_assert(!f.created);
        cr_assert(!f.written);
        /* O_RDONLY so our read raises IN_CLOSE_NOWRITE, which the watcher
         * ignores; every fd is O_CLOEXEC. */
        cr_assert_eq(fcntl(f.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        cr_assert(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
        sess_release(dfd, "sess_abc", &f);
        cr_assert_eq(f.fd, -1);
        cr_assert_null(f.data);

        cr_assert_eq(sess_open(dfd, "sess_abc", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(fcntl(f.fd, F_GETFL) & O_ACCMODE, O_RDWR);
        cr_assert_eq(f.len, len);
        cr_assert_eq(memcmp(f.data, content, len), 0);
        cr_assert_eq(f.ver.mtime_ns, T_MTIME);
        cr_assert_eq(f.ver.hash, sess_hash(content, len));
        sess_release(dfd, "sess_abc", &f);

        /* Reading changed nothing, not even the mtime PHP's GC relies on. */
        assert_content("sess_abc", content, len);
        cr_assert_eq(mtime_of("sess_abc"), T_MTIME);
}

Test(sess, open_empty_file) {
        struct sess_file f = SESS_FILE_INIT;

        put_file("sess_empty", "", 0);
        set_times("sess_empty", T_MTIME, T_MTIME);
        cr_assert_eq(sess_open(dfd, "sess_empty", SESS_SHARED, T_MAX, &f), 0);
        cr_assert_eq(f.len, 0);
        cr_assert_null(f.data);
        cr_assert_eq(f.ver.mtime_ns, T_MTIME);
        cr_assert_eq(f.ver.hash, sess_hash(NULL, 0));
        sess_release(dfd, "sess_empty", &f);
        cr_assert(exists("sess_empty"), "an existing empty file is PHP's: never removed");
}

Test(sess, open_larger_file) {
        struct sess_file f = SESS_FILE_INIT;
        size_t len = 300000;
        uint8_t *p = pattern(len, 7);

        put_file("sess_large", p, len);
        cr_assert_eq(sess_open(dfd, "sess_large", SESS_SHARED, T_MAX, &f), 0);
        cr_assert_eq(f.len, len);
        cr_assert_eq(memcmp(f.data, p, len), 0);
        cr_assert_eq(f.ver.hash, sess_hash(p, len));
        sess_release(dfd, "sess_large", &f);
        free(p);
}

/* ---- locking ---- */

Test(sess, lock_exclusive_held_by_php) {
        struct sess_file f = SESS_FILE_INIT;
        int php;

        put_str("sess_busy", "data");
        php = php_lock("sess_busy", LOCK_EX);
        cr_assert_eq(sess_open(dfd, "sess_busy", SESS_SHARED, T_MAX, &f), -EWOULDBLOCK);
        cr_assert_eq(f.fd, -1);
        cr_assert_eq(sess_open(dfd, "sess_busy", SESS_EXCL, T_MAX, &f), -EWOULDBLOCK);
        cr_assert_eq(f.fd, -1);
        cr_assert_eq(sess_open(dfd, "sess_busy", SESS_EXCL | SESS_CREATE, T_MAX, &f), -EWOULDBLOCK);
        cr_assert_eq(f.fd, -1);
        assert_content("sess_busy", "data", 4);   /* not removed, not created anew */

        close(php);   /* the request ends: retry succeeds */
        cr_assert_eq(sess_open(dfd, "sess_busy", SESS_SHARED, T_MAX, &f), 0);
        sess_release(dfd, "sess_busy", &f);
        cr_assert_eq(sess_open(dfd, "sess_busy", SESS_EXCL, T_MAX, &f), 0);
        sess_release(dfd, "sess_busy", &f);
}

Test(sess, lock_shared_held) {
        struct sess_file f = SESS_FILE_INIT;
        int other;

        put_str("sess_rd", "data");
        other = php_lock("sess_rd", LOCK_SH);
        cr_assert_eq(sess_open(dfd, "sess_rd", SESS_SHARED, T_MAX, &f), 0, "readers share");
        cr_assert_eq(f.len, 4);
        sess_release(dfd, "sess_rd", &f);
        cr_assert_eq(sess_open(dfd, "sess_rd", SESS_EXCL, T_MAX, &f), -EWOULDBLOCK);
        cr_assert_eq(f.fd, -1);
        close(other);
}

Test(sess, lock_held_until_release) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_l", "data");
        cr_assert_eq(sess_open(dfd, "sess_l", SESS_SHARED, T_MAX, &f), 0);
        cr_assert(can_lock("sess_l", LOCK_SH));
        cr_assert(!can_lock("sess_l", LOCK_EX), "PHP must wait while we read");
        sess_release(dfd, "sess_l", &f);
        cr_assert(can_lock("sess_l", LOCK_EX));

        cr_assert_eq(sess_open(dfd, "sess_l", SESS_EXCL, T_MAX, &f), 0);
        cr_assert(!can_lock("sess_l", LOCK_SH), "PHP must wait while we apply");
        cr_assert(!can_lock("sess_l", LOCK_EX));
        sess_release(dfd, "sess_l", &f);
        cr_assert(can_lock("sess_l", LOCK_EX), "release drops the lock");
}

/* ---- sess_replace ---- */

Test(sess, replace_in_place) {
        struct sess_file f = SESS_FILE_INIT;
        const char *now = "user|s:5:\"alice\";";
        struct stat before, after;
        char buf[64] = { 0 };
        int php;

        put_str("sess_r", "old content");
        set_times("sess_r", 1000000000ull, 1000000000ull);
        before = stat_of("sess_r");
        /* A PHP request that opened the file earlier (and will lock it
         * after us) must read the new content through its own fd. */
        php = openat(dfd, "sess_r", O_RDWR | O_CLOEXEC);
        cr_assert_geq(php, 0);

        cr_assert_eq(sess_open(dfd, "sess_r", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(sess_replace(&f, now, strlen(now), T_MTIME), 0);
        cr_assert(f.written);
        cr_assert_eq(f.ver.mtime_ns, T_MTIME);
        cr_assert_eq(f.ver.hash, sess_hash(now, strlen(now)));
        sess_release(dfd, "sess_r", &f);

        after = stat_of("sess_r");
        cr_assert_eq(after.st_ino, before.st_ino, "written in place, never renamed over");
        cr_assert_eq(after.st_dev, before.st_dev);
        cr_assert_eq(after.st_mode, before.st_mode, "an existing file keeps its mode");
        cr_assert_eq(sess_ts_ns(&after.st_mtim), T_MTIME, "exact ns mtime");
        assert_content("sess_r", now, strlen(now));
        cr_assert_eq(pread(php, buf, sizeof(buf), 0), (ssize_t)strlen(now));
        cr_assert_str_eq(buf, now);
        close(php);

        /* What the next sender read sees. */
        cr_assert_eq(sess_open(dfd, "sess_r", SESS_SHARED, T_MAX, &f), 0);
        cr_assert_eq(f.ver.mtime_ns, T_MTIME);
        cr_assert_eq(f.ver.hash, sess_hash(now, strlen(now)));
        sess_release(dfd, "sess_r", &f);
}

Test(sess, replace_shorter_longer_empty) {
        struct sess_file f = SESS_FILE_INIT;
        uint8_t *big = pattern(200000, 3), *mid = pattern(1000, 9);
        ino_t ino;

        put_file("sess_s", mid, 1000);
        ino = stat_of("sess_s").st_ino;
        cr_assert_eq(sess_open(dfd, "sess_s", SESS_EXCL, T_MAX, &f), 0);

        cr_assert_eq(sess_replace(&f, "short", 5, T_MTIME), 0);
        assert_content("sess_s", "short", 5);
        cr_assert_eq(mtime_of("sess_s"), T_MTIME);

        cr_assert_eq(sess_replace(&f, big, 200000, T_MTIME + 1), 0);
        assert_content("sess_s", big, 200000);
        cr_assert_eq(mtime_of("sess_s"), T_MTIME + 1);

        cr_assert_eq(sess_replace(&f, mid, 999, T_MTIME + 2), 0);
        assert_content("sess_s", mid, 999);

        cr_assert_eq(sess_replace(&f, NULL, 0, T_MTIME + 3), 0);
        assert_content("sess_s", "", 0);
        cr_assert_eq(mtime_of("sess_s"), T_MTIME + 3);
        cr_assert_eq(f.ver.hash, sess_hash(NULL, 0));
        cr_assert_eq(f.ver.mtime_ns, T_MTIME + 3);
        sess_release(dfd, "sess_s", &f);

        cr_assert(exists("sess_s"), "an emptied session is still a session");
        cr_assert_eq(stat_of("sess_s").st_ino, ino);
        free(big);
        free(mid);
}

Test(sess, replace_old_mtime) {
        struct sess_file f = SESS_FILE_INIT;
        uint64_t old = 1ull * 1000000000ull + 1;   /* 1970: mtimes replicate, whatever they are */

        put_str("sess_o", "x");
        cr_assert_eq(sess_open(dfd, "sess_o", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(sess_replace(&f, "y", 1, old), 0);
        sess_release(dfd, "sess_o", &f);
        cr_assert_eq(mtime_of("sess_o"), old);
}

Test(sess, replace_created_mode_0600) {
        static const mode_t masks[] = { 0, 022, 0277 };
        struct sess_file f = SESS_FILE_INIT;
        char name[32];

        /* 0600 whatever the umask: PHP refuses files it cannot read, and
         * sessions are nobody else's business. */
        for (size_t i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
                snprintf(name, sizeof(name), "sess_m%zu", i);
                (void)umask(masks[i]);
                cr_assert_eq(sess_open(dfd, name, SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
                cr_assert(f.created);
                cr_assert_eq(sess_replace(&f, "v", 1, T_MTIME), 0);
                sess_release(dfd, name, &f);
                cr_assert_eq(stat_of(name).st_mode & 07777, 0600, "umask %03o: mode %03o", masks[i],
                             stat_of(name).st_mode & 07777);
                cr_assert(S_ISREG(stat_of(name).st_mode));
                assert_content(name, "v", 1);
        }
        (void)umask(022);
}

Test(sess, replace_after_release_is_ebadf) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_replace(&f, "x", 1, T_MTIME), -EBADF);
        cr_assert_eq(sess_set_mtime(&f, T_MTIME), -EBADF);
        cr_assert_eq(sess_unlink(dfd, "sess_x", &f), -EBADF);
        sess_release(dfd, "sess_x", &f);   /* a never-opened f */
        sess_release(dfd, "sess_x", &f);
        cr_assert_eq(f.fd, -1);
}

/* ---- ENOSPC: a full disk never costs the old content ---- */

/* Fill the mounted tmpfs until only about `leave` bytes are free; returns
 * the bytes left free. */
static size_t fill_fs(size_t leave) {
        static uint8_t chunk[4096];
        struct statvfs sv;
        size_t free_b, target, done = 0;
        int fd;

        cr_assert_eq(fstatvfs(dfd, &sv), 0);
        free_b = (size_t)sv.f_bavail * sv.f_bsize;
        cr_assert_gt(free_b, leave + 4096, "tmpfs too small: %zu free", free_b);
        target = free_b - leave;
        fd = openat(dfd, "filler", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        memset(chunk, 0xaa, sizeof(chunk));
        while (done < target) {
                size_t n = target - done < sizeof(chunk) ? target - done : sizeof(chunk);
                ssize_t w = write(fd, chunk, n);
                if (w < 0 && errno == ENOSPC)
                        break;
                cr_assert_gt(w, 0, "write filler: %s", strerror(errno));
                done += (size_t)w;
        }
        close(fd);
        cr_assert_eq(fstatvfs(dfd, &sv), 0);
        return (size_t)sv.f_bavail * sv.f_bsize;
}

Test(sess, replace_enospc_keeps_old) {
        struct sess_file f = SESS_FILE_INIT;
        uint8_t *old = pattern(100, 5), *big;
        struct stat before, after;
        size_t free_b, big_len;
        struct proto_ver ver;

        mount_small();
        put_file("sess_full", old, 100);
        set_times("sess_full", T_MTIME, T_MTIME);
        before = stat_of("sess_full");
        free_b = fill_fs(2 * 4096);
        /* Bigger than what is free plus the page the file already has, so
         * fallocate gets part of the way and must fail. */
        big_len = free_b + 8 * 4096;
        big = pattern(big_len, 11);

        cr_assert_eq(sess_open(dfd, "sess_full", SESS_EXCL, T_MAX, &f), 0);
        ver = f.ver;
        cr_assert_eq(sess_replace(&f, big, big_len, T_MTIME + 1000), -ENOSPC);
        cr_assert(!f.written);
        cr_assert_eq(f.ver.mtime_ns, ver.mtime_ns, "f's version is still the file's");
        cr_assert_eq(f.ver.hash, ver.hash);
        sess_release(dfd, "sess_full", &f);

        after = stat_of("sess_full");
        cr_assert_eq(after.st_ino, before.st_ino);
        cr_assert_eq(after.st_size, 100, "size %lld", (long long)after.st_size);
        cr_assert_eq(sess_ts_ns(&after.st_mtim), T_MTIME, "mtime untouched");
        assert_content("sess_full", old, 100);

        /* Space comes back: the retry succeeds. */
        cr_assert_eq(unlinkat(dfd, "filler", 0), 0);
        cr_assert_eq(sess_open(dfd, "sess_full", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(sess_replace(&f, big, big_len, T_MTIME + 1000), 0);
        sess_release(dfd, "sess_full", &f);
        assert_content("sess_full", big, big_len);
        cr_assert_eq(mtime_of("sess_full"), T_MTIME + 1000);
        free(old);
        free(big);
}

Test(sess, replace_enospc_created_is_removed) {
        struct sess_file f = SESS_FILE_INIT;
        size_t free_b, big_len;
        uint8_t *big;

        mount_small();
        free_b = fill_fs(2 * 4096);
        big_len = free_b + 8 * 4096;
        big = pattern(big_len, 13);

        cr_assert_eq(sess_open(dfd, "sess_new", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert(f.created);
        cr_assert_eq(sess_replace(&f, big, big_len, T_MTIME), -ENOSPC);
        sess_release(dfd, "sess_new", &f);
        cr_assert(!exists("sess_new"), "a failed apply leaves no empty session behind");
        free(big);
}

/* ---- SESS_CREATE and sess_release ---- */

Test(sess, create_then_release_unwritten) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_open(dfd, "sess_c", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert(f.created);
        cr_assert(!f.written);
        cr_assert_eq(f.len, 0);
        cr_assert_null(f.data);
        cr_assert(exists("sess_c"));
        cr_assert(S_ISREG(stat_of("sess_c").st_mode));
        cr_assert_eq(stat_of("sess_c").st_ino, f.ino);
        cr_assert(!can_lock("sess_c", LOCK_SH), "created and locked at once");
        sess_release(dfd, "sess_c", &f);
        cr_assert(!exists("sess_c"), "created but never written: removed again");
}

Test(sess, create_then_replace_stays) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_open(dfd, "sess_c", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert(f.created);
        cr_assert_eq(sess_replace(&f, "hello", 5, T_MTIME), 0);
        sess_release(dfd, "sess_c", &f);
        assert_content("sess_c", "hello", 5);
        cr_assert_eq(mtime_of("sess_c"), T_MTIME);

        /* An empty replicated session is written too: it stays. */
        cr_assert_eq(sess_open(dfd, "sess_e", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert_eq(sess_replace(&f, NULL, 0, T_MTIME), 0);
        sess_release(dfd, "sess_e", &f);
        cr_assert(exists("sess_e"));
        cr_assert_eq(stat_of("sess_e").st_size, 0);
        cr_assert_eq(mtime_of("sess_e"), T_MTIME);
}

Test(sess, create_existing_is_not_created) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_have", "php wrote this");
        cr_assert_eq(sess_open(dfd, "sess_have", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert(!f.created);
        cr_assert_eq(f.len, 14);
        cr_assert_eq(memcmp(f.data, "php wrote this", 14), 0);
        sess_release(dfd, "sess_have", &f);
        assert_content("sess_have", "php wrote this", 14);
}

Test(sess, release_created_leaves_a_new_inode_alone) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_open(dfd, "sess_c", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert(f.created);
        /* Something renamed another file over the name meanwhile. */
        put_str("other", "someone else's");
        cr_assert_eq(renameat(dfd, "other", dfd, "sess_c"), 0);
        sess_release(dfd, "sess_c", &f);
        assert_content("sess_c", "someone else's", 14);
}

/* ---- sess_unlink ---- */

Test(sess, unlink_removes) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_u", "bye");
        cr_assert_eq(sess_open(dfd, "sess_u", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(sess_unlink(dfd, "sess_u", &f), 0);
        cr_assert(!exists("sess_u"));
        sess_release(dfd, "sess_u", &f);
        cr_assert(!exists("sess_u"));
}

Test(sess, unlink_stale_when_replaced) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_u", "old");
        cr_assert_eq(sess_open(dfd, "sess_u", SESS_EXCL, T_MAX, &f), 0);
        put_str("newer", "new");
        cr_assert_eq(renameat(dfd, "newer", dfd, "sess_u"), 0);
        cr_assert_eq(sess_unlink(dfd, "sess_u", &f), -ESTALE);
        sess_release(dfd, "sess_u", &f);
        assert_content("sess_u", "new", 3);
}

Test(sess, unlink_stale_when_gone) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_u", "old");
        cr_assert_eq(sess_open(dfd, "sess_u", SESS_EXCL, T_MAX, &f), 0);
        cr_assert_eq(unlinkat(dfd, "sess_u", 0), 0);   /* PHP's GC got there first */
        cr_assert_eq(sess_unlink(dfd, "sess_u", &f), -ESTALE);
        sess_release(dfd, "sess_u", &f);
        cr_assert(!exists("sess_u"));
}

/* ---- sess_set_mtime ---- */

Test(sess, set_mtime_only) {
        struct sess_file f = SESS_FILE_INIT;
        struct stat before, after;

        put_str("sess_t", "content stays");
        set_times("sess_t", T_MTIME, T_MTIME);
        cr_assert_eq(sess_open(dfd, "sess_t", SESS_EXCL, T_MAX, &f), 0);
        /* After sess_open's read: that read may itself update the atime
         * (relatime), which is the kernel's business, not ours. */
        cr_assert_eq(fstat(f.fd, &before), 0);
        cr_assert_eq(sess_set_mtime(&f, T_MTIME + 999999999ull), 0);
        cr_assert_eq(f.ver.mtime_ns, T_MTIME + 999999999ull);
        cr_assert_eq(f.ver.hash, sess_hash("content stays", 13), "the hash is the content's");
        cr_assert(!f.written, "a touch is not a write");
        sess_release(dfd, "sess_t", &f);

        after = stat_of("sess_t");
        cr_assert_eq(sess_ts_ns(&after.st_mtim), T_MTIME + 999999999ull);
        cr_assert_eq(sess_ts_ns(&after.st_atim), sess_ts_ns(&before.st_atim), "atime untouched");
        cr_assert_eq(after.st_ino, before.st_ino);
        cr_assert_eq(after.st_size, before.st_size);
        cr_assert_eq(after.st_mode, before.st_mode);
        assert_content("sess_t", "content stays", 13);
}

Test(sess, set_mtime_on_created_is_not_a_write) {
        struct sess_file f = SESS_FILE_INIT;

        /* A touch never creates a session: sess_release still removes a
         * created file that was only touched. */
        cr_assert_eq(sess_open(dfd, "sess_t", SESS_EXCL | SESS_CREATE, T_MAX, &f), 0);
        cr_assert_eq(sess_set_mtime(&f, T_MTIME), 0);
        sess_release(dfd, "sess_t", &f);
        cr_assert(!exists("sess_t"));
}

/* ---- sess_open_owned: only PHP's own files (docs/DESIGN.md "Only PHP's own files") ---- */

#define T_OTHER_UID 65534   /* nobody: any uid but ours */

/* Give name to T_OTHER_UID, as if another local user had created it. The
 * tests run as root (make check), so chown works. */
static void give_to_other(const char *name) {
        cr_assert_eq(fchownat(dfd, name, T_OTHER_UID, T_OTHER_UID, AT_SYMLINK_NOFOLLOW), 0,
                     "chown %s: %s (these tests run as root)", name, strerror(errno));
        cr_assert_eq(stat_of(name).st_uid, T_OTHER_UID);
}

Test(sess, owned_accepts_a_file_of_the_owner) {
        struct sess_file f = SESS_FILE_INIT;

        put_str("sess_mine", "uid|i:1;");
        cr_assert_eq(sess_open_owned(dfd, "sess_mine", SESS_SHARED, T_MAX, geteuid(), &f), 0);
        cr_assert_eq(f.uid, geteuid(), "f.uid is the owner");
        cr_assert_eq(f.nlink, 1, "f.nlink is the link count");
        cr_assert_eq(f.len, 8);
        cr_assert_eq(memcmp(f.data, "uid|i:1;", 8), 0);
        sess_release(dfd, "sess_mine", &f);
        cr_assert_eq(sess_open_owned(dfd, "sess_mine", SESS_EXCL, T_MAX, geteuid(), &f), 0);
        sess_release(dfd, "sess_mine", &f);
}

Test(sess, owned_refuses_a_file_of_another_uid) {
        static const int modes[] = { SESS_SHARED, SESS_EXCL, SESS_EXCL | SESS_CREATE };
        const char *content = "uid|i:1;role|s:5:\"admin\";";
        struct sess_file f = SESS_FILE_INIT;
        uint64_t ino;

        put_str("sess_planted", content);
        set_times("sess_planted", T_MTIME, T_MTIME);
        give_to_other("sess_planted");
        ino = stat_of("sess_planted").st_ino;
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                f = (struct sess_file)SESS_FILE_INIT;
                cr_assert_eq(sess_open_owned(dfd, "sess_planted", modes[i], T_MAX, geteuid(), &f), -EPERM,
                             "flags %d: a file another uid owns is refused", modes[i]);
                cr_assert_eq(f.fd, -1);
                cr_assert_null(f.data);
                cr_assert_eq(f.uid, T_OTHER_UID, "f.uid says whose it is, for the log");
                cr_assert_eq(f.nlink, 1);
                cr_assert(can_lock("sess_planted", LOCK_EX), "a refused open keeps no lock");
        }
        /* Left exactly as it was: not removed, not rewritten, not touched. */
        cr_assert_eq(stat_of("sess_planted").st_ino, ino);
        cr_assert_eq(stat_of("sess_planted").st_uid, T_OTHER_UID);
        assert_content("sess_planted", content, strlen(content));
        cr_assert_eq(mtime_of("sess_planted"), T_MTIME);

        /* The same file is accepted for its own owner, and by sess_open. */
        cr_assert_eq(sess_open_owned(dfd, "sess_planted", SESS_SHARED, T_MAX, T_OTHER_UID, &f), 0);
        cr_assert_eq(f.uid, T_OTHER_UID);
        sess_release(dfd, "sess_planted", &f);
        cr_assert_eq(sess_open_owned(dfd, "sess_planted", SESS_SHARED, T_MAX, SESS_ANY_OWNER, &f), 0);
        sess_release(dfd, "sess_planted", &f);
        cr_assert_eq(sess_open(dfd, "sess_planted", SESS_SHARED, T_MAX, &f), 0, "sess_open takes any owner");
        sess_release(dfd, "sess_planted", &f);
}

Test(sess, owned_refuses_a_file_with_a_second_hard_link) {
        static const int modes[] = { SESS_SHARED, SESS_EXCL, SESS_EXCL | SESS_CREATE };
        struct sess_file f = SESS_FILE_INIT;
        char outside[64], path[128];
        int ofd;

        /* The second name is outside the session directory: writing through
         * the session name would write that file. */
        strcpy(outside, "/tmp/test_sess_outside.XXXXXX");
        cr_assert_not_null(mkdtemp(outside));
        snprintf(path, sizeof(path), "%s/victim", outside);
        ofd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(ofd, 0, "create %s: %s", path, strerror(errno));
        cr_assert_eq(write(ofd, "root-only", 9), 9);
        close(ofd);
        cr_assert_eq(linkat(AT_FDCWD, path, dfd, "sess_linked", 0), 0, "link: %s", strerror(errno));

        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                f = (struct sess_file)SESS_FILE_INIT;
                cr_assert_eq(sess_open_owned(dfd, "sess_linked", modes[i], T_MAX, geteuid(), &f), -EMLINK,
                             "flags %d: a hard-linked file is refused", modes[i]);
                cr_assert_eq(f.fd, -1);
                cr_assert_eq(f.nlink, 2, "f.nlink says how many links, for the log");
                cr_assert_eq(f.uid, geteuid());
                f = (struct sess_file)SESS_FILE_INIT;
                cr_assert_eq(sess_open_owned(dfd, "sess_linked", modes[i], T_MAX, SESS_ANY_OWNER, &f), -EMLINK,
                             "flags %d: whoever the owner", modes[i]);
                f = (struct sess_file)SESS_FILE_INIT;
                cr_assert_eq(sess_open(dfd, "sess_linked", modes[i], T_MAX, &f), -EMLINK,
                             "flags %d: sess_open refuses hard links too", modes[i]);
                cr_assert_eq(f.fd, -1);
        }
        cr_assert_eq(stat_of("sess_linked").st_nlink, 2, "both names are left");
        assert_content("sess_linked", "root-only", 9);

        /* With its second name gone it is an ordinary session file again. */
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(rmdir(outside), 0);
        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open_owned(dfd, "sess_linked", SESS_EXCL, T_MAX, geteuid(), &f), 0);
        cr_assert_eq(f.nlink, 1);
        sess_release(dfd, "sess_linked", &f);
}

/* A file this call creates is accepted whoever the owner is meant to be:
 * it is ours until the caller gives it away (sess_chown). */
Test(sess, owned_accepts_a_file_it_creates) {
        struct sess_file f = SESS_FILE_INIT;

        cr_assert_eq(sess_open_owned(dfd, "sess_new", SESS_EXCL | SESS_CREATE, T_MAX, geteuid(), &f), 0);
        cr_assert(f.created);
        cr_assert_eq(sess_replace(&f, "a|i:1;", 6, T_MTIME), 0);
        sess_release(dfd, "sess_new", &f);
        assert_content("sess_new", "a|i:1;", 6);

        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open_owned(dfd, "sess_given", SESS_EXCL | SESS_CREATE, T_MAX, T_OTHER_UID, &f), 0,
                     "created for another owner: accepted before it is given away");
        cr_assert(f.created);
        cr_assert_eq(f.uid, geteuid());
        cr_assert_eq(sess_chown(&f, T_OTHER_UID, T_OTHER_UID), 0);
        cr_assert_eq(sess_replace(&f, "b|i:2;", 6, T_MTIME), 0);
        sess_release(dfd, "sess_given", &f);
        cr_assert_eq(stat_of("sess_given").st_uid, T_OTHER_UID);
        assert_content("sess_given", "b|i:2;", 6);

        /* Once it exists it is judged by its owner like any other file. */
        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open_owned(dfd, "sess_given", SESS_EXCL | SESS_CREATE, T_MAX, T_OTHER_UID, &f), 0);
        cr_assert_not(f.created);
        sess_release(dfd, "sess_given", &f);
        f = (struct sess_file)SESS_FILE_INIT;
        cr_assert_eq(sess_open_owned(dfd, "sess_given", SESS_EXCL | SESS_CREATE, T_MAX, geteuid(), &f), -EPERM);
        cr_assert(exists("sess_given"), "a refused existing file is never removed");
}

/* ---- sess_tag (docs/DESIGN.md "Session ids in logs") ---- */

static bool is_tag(const char *t) {
        if (strlen(t) != SESS_TAG_LEN - 1 || t[0] != '#')
                return false;
        for (size_t i = 1; i < SESS_TAG_LEN - 1; i++)
                if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
                        return false;
        return true;
}

Test(sess, tag_format_and_stability) {
        char a[SESS_TAG_LEN], b[SESS_TAG_LEN], c[SESS_TAG_LEN], big[PROTO_NAME_MAX + 1];

        cr_assert_eq(sess_tag("sess_abc", a), a, "returns buf");
        cr_assert(is_tag(a), "\"#\" and 8 lowercase hex digits: \"%s\"", a);
        cr_assert_str_eq(sess_tag("sess_abc", b), a, "the same name, the same tag");
        cr_assert_str_neq(sess_tag("sess_abd", c), a, "another name, another tag");
        cr_assert_null(strstr(a, "abc"), "the tag does not contain the id");

        /* Any bytes: a name from the wire is tagged before it is checked. */
        cr_assert(is_tag(sess_tag("", c)), "\"%s\"", c);
        cr_assert(is_tag(sess_tag("sess_a\n<3>forged\x1b[0m", c)), "\"%s\"", c);
        memset(big, 'z', PROTO_NAME_MAX);
        big[PROTO_NAME_MAX] = '\0';
        cr_assert(is_tag(sess_tag(big, c)), "\"%s\"", c);
}

/* The operator's way to find a user's tag (lib/sess.h): the first 8 hex
 * digits of `printf %s sess_<id> | xxhsum -H3`. Values from xxhsum 0.8.1:
 *   printf %s sess_abc | xxhsum -H3                  -> a00fe31813b4089c
 *   printf %s sess_9a8b7c6d5e4f3a2b1c0d | xxhsum -H3 -> 6670b35a944146c3 */
Test(sess, tag_matches_xxhsum_h3) {
        char t[SESS_TAG_LEN];

        cr_assert_str_eq(sess_tag("sess_abc", t), "#a00fe318");
        cr_assert_str_eq(sess_tag("sess_9a8b7c6d5e4f3a2b1c0d", t), "#6670b35a");
        cr_assert_eq(sess_hash("sess_abc", 8), 0xa00fe31813b4089cull, "the tag is the top of the content hash");
}
