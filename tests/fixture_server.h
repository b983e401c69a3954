/* The socket server on the node of fixture_node.h ("a", peers "b" and
 * "c"), on a real unix socket and the real loop, for test_server.c and
 * test_handoff.c. A test writes as a client, runs the loop a given number of
 * iterations (each: callbacks, timers, then a turn that flushes the replies
 * as daemon_turn does), then reads what came back. Header-only: each test
 * file is its own program. */
#ifndef SESSYNC_TESTS_FIXTURE_SERVER_H
#define SESSYNC_TESTS_FIXTURE_SERVER_H

#include "fixture_node.h"

#include "daemon/server.h"

static struct server *srv;
static char sock_path[96];
static int turns, turn_limit = 1 << 30;

static void turn(struct loop *l, void *ctx) {
        (void)ctx;
        server_flush(srv);
        node_end_turn(node);
        if (++turns > turn_limit)
                loop_stop(l, 0);
}

/* Run n iterations of the loop, or fewer if 200 ms pass first (epoll
 * would wait for the next tick when nothing is ready), then flush. */
__attribute__((unused)) static void iterate(int n) {
        struct loop_timer *guard = loop_timer_new(loop, stop_cb, NULL);

        turns = 0;
        turn_limit = n;
        loop_timer_arm(loop, guard, 200);
        (void)loop_run(loop);
        loop_del_timer(loop, guard);
        server_flush(srv);
        turn_limit = 1 << 30;
}

static void srv_setup(void) {
        setup();
        snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
        conf.socket = sock_path;
        cr_assert_eq(server_new(node, loop, NULL, &srv), 0);
        loop_set_before_sleep(loop, turn, NULL);
}

static void srv_teardown(void) {
        server_free(srv);
        teardown();
}

#endif
