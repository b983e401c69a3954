/* The world fuzz_node's node starts from before every input, shared with
 * the seed writer (seeds.c, "seeds node DIR DICT") so seeds can name these
 * files, hit their exact versions and make deltas against their bytes.
 *
 * Node "a" with peers "b" and "c"; its session_dir holds PHP's own files
 * and the things a receiver must never write through (a file of another
 * owner, a hard link to a file outside, a symlink to a file outside, a
 * directory, a file a PHP request holds locked), and its journal holds
 * one logout. Versions are fixed times
 * around FZ_T0_S (November 2023), inside the 3650-day tombstone_ttl the
 * target configures and never in the future: the same input does the same
 * thing on every run. Header-only: each program is its own. */
#ifndef SESSYNC_TESTS_FUZZ_NODE_FIXTURE_H
#define SESSYNC_TESTS_FUZZ_NODE_FIXTURE_H

#include <stdint.h>

#define FZ_T0_S 1700000000ull
#define FZ_NS(s) ((FZ_T0_S + (s)) * 1000000000ull)
#define FZ_FOREIGN_UID 65534
#define FZ_MAX_FILE 4096u                /* the target's max_file_size: a FILE over it fits an input */
#define FZ_MARK_CLOCK 0x5e5e5e5e5e5e5e5eull /* clock_ns of the harness's last PING */

enum fz_what {
        FZ_PLAIN,       /* PHP's own file (root's: the target runs as root, no php_user) */
        FZ_FOREIGN,     /* owned by FZ_FOREIGN_UID: never written, never unlinked */
        FZ_HARDLINK,    /* a second name of "outside" (in the fixture root): never written */
        FZ_SYMLINK,     /* -> ../target: never followed */
        FZ_DIR,         /* a directory with a session name */
        FZ_TOMB,        /* no file; the journal holds a logout (destroy) at mtime_s */
        FZ_LOCKED,      /* PHP's own, held LOCK_EX by the harness (a request in progress) */
};

struct fz_fixture {
        const char *name;
        enum fz_what what;
        const char *content;    /* FZ_PLAIN, FZ_FOREIGN, FZ_HARDLINK */
        unsigned mtime_s;       /* seconds after FZ_T0_S */
};

static const struct fz_fixture fz_fixtures[] = {
        { "sess_fz1aaaaaaaa", FZ_PLAIN, "user|s:5:\"alice\";cart|a:0:{}", 100 },
        { "sess_fz2bbbbbbbb", FZ_PLAIN,
          "user|s:3:\"bob\";history|a:8:{i:0;s:5:\"/home\";i:1;s:6:\"/items\";i:2;s:7:\"/item/1\";"
          "i:3;s:7:\"/item/2\";i:4;s:5:\"/cart\";i:5;s:9:\"/checkout\";i:6;s:4:\"/pay\";i:7;s:5:\"/done\";}"
          "csrf|s:32:\"0123456789abcdef0123456789abcdef\";",
          200 },
        { "sess_fz3cccccccc", FZ_FOREIGN, "owner|s:5:\"other\";", 100 },
        { "sess_fz4dddddddd", FZ_HARDLINK, "linked|s:4:\"twin\";", 100 },
        { "sess_fz5eeeeeeee", FZ_SYMLINK, NULL, 100 },
        { "sess_fz6ffffffff", FZ_DIR, NULL, 100 },
        { "sess_fz7gggggggg", FZ_TOMB, NULL, 300 },
        { "sess_fz8hhhhhhhh", FZ_LOCKED, "user|s:4:\"busy\";", 100 },
};

#define FZ_N_FIXTURES (sizeof(fz_fixtures) / sizeof(fz_fixtures[0]))

/* What the symlink points at, in the fixture root (outside session_dir). */
#define FZ_TARGET_CONTENT "target|s:6:\"secret\";"

#endif
