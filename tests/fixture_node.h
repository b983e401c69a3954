/* A node on a real temporary directory, for the Criterion tests of the
 * node (test_node.c) and the receiver (test_recv.c): two peers "b" and "c"
 * that never connect, so dirty sets only fill. Header-only: each test file
 * is its own program. */
#ifndef SESSYNC_TESTS_FIXTURE_NODE_H
#define SESSYNC_TESTS_FIXTURE_NODE_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/node_int.h"
#include "lib/conf.h"
#include "lib/sess.h"
#include "lib/state.h"

static char dir[64];
static struct conf conf;
static struct conf_peer peers[2];
static struct loop *loop;
static struct node *node;
static int dirfd_;

static void setup(void) {
        strcpy(dir, "/tmp/sessync-node.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        memset(&conf, 0, sizeof(conf));
        strcpy(conf.name, "a");
        conf.session_dir = dir;
        conf.session_prefix = "sess_";
        conf.max_file_size = 1 << 20;
        conf.session_lifetime_ms = 1440 * 1000;
        conf.tombstone_ttl_ms = 86400 * 1000;
        strcpy(peers[0].name, "b");
        strcpy(peers[1].name, "c");
        conf.peers = peers;
        conf.n_peers = 2;
        loop = loop_new();
        cr_assert_not_null(loop);
        dirfd_ = sess_dir_open(dir);
        cr_assert_geq(dirfd_, 0);
        cr_assert_eq(node_new(&conf, loop, dirfd_, &node), 0);
}

static void teardown(void) {
        char cmd[128];

        node_free(node);
        loop_free(loop);
        close(dirfd_);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        (void)system(cmd);
}

static void put_file(const char *name, const char *content, long long mtime_s) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(content, f);
        fclose(f);
        if (mtime_s) {
                struct timespec ts[2] = { { mtime_s, 0 }, { mtime_s, 123 } };
                cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
        }
}

__attribute__((unused)) static void rm_file(const char *name) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        cr_assert_eq(unlink(path), 0);
}

/* Check a name as an inotify event would, then end the turn. */
static struct node_ent *check(const char *name) {
        node_check(node, name);
        node_run_checks(node);
        node_end_turn(node);
        return node_get(node, name);
}

__attribute__((unused)) static int64_t stop_cb(struct loop *l, void *ctx) {
        (void)ctx;
        loop_stop(l, 0);
        return LOOP_TIMER_STOP;
}

/* Run the loop (its timers) for ms milliseconds. */
__attribute__((unused)) static void run_for(unsigned ms) {
        struct loop_timer *t = loop_timer_new(loop, stop_cb, NULL);

        loop_timer_arm(loop, t, ms);
        (void)loop_run(loop);
        loop_del_timer(loop, t);
}

__attribute__((unused)) static size_t drain(size_t idx) {
        size_t n = 0;

        while (node_next_dirty(node, idx))
                n++;
        return n;
}

#endif
