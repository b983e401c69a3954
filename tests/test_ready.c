/* Readiness (daemon/node_ready.c, docs/DESIGN.md "Readiness"): what a
 * returning node wants from each peer after comparing inventories, when it
 * is ready, and when a stalled peer stops holding that up. Catch-up is
 * driven through the node's functions with inventory entries built by
 * hand; frames from the peer go through node_recv, as the socket server
 * hands them over. Peers "b" = 0 and "c" = 1 (fixture). */
#include "tests/fixture_node.h"

static void r_setup(void) {
        setup();
        conf.ready_timeout_ms = 30000;
        conf.clock_skew_warn_ms = 2000;
}

TestSuite(ready, .init = r_setup, .fini = teardown);

static uint64_t now_s(void) {
        return loop_realtime_ns() / 1000000000ull;
}

static struct proto_inv_ent inv_file(const char *name, const char *content, uint64_t mtime_s) {
        struct proto_inv_ent ie = { .kind = PROTO_KIND_FILE };

        snprintf(ie.name, sizeof(ie.name), "%s", name);
        ie.ver.mtime_ns = mtime_s * 1000000000ull + 123;   /* put_file's ns */
        ie.ver.hash = sess_hash(content, strlen(content));
        return ie;
}

/* Peer idx's inventory is exactly these entries. */
static void compare(size_t idx, const struct proto_inv_ent *ents, size_t n) {
        node_catchup_begin(node, idx);
        for (size_t i = 0; i < n; i++)
                node_catchup_entry(node, idx, &ents[i]);
        (void)node_catchup_finish(node, idx);
}

/* Peer idx sends the FILE of ie's version with that content. */
static uint8_t push(size_t idx, const struct proto_inv_ent *ie, const char *content) {
        struct proto_msg m = { .type = PROTO_FILE }, ack;

        snprintf(m.name, sizeof(m.name), "%s", ie->name);
        m.ver = ie->ver;
        m.data = (const uint8_t *)content;
        m.data_len = strlen(content);
        m.size = m.data_len;
        node_recv(node, idx, &m, &ack);
        return ack.status;
}

static const char *why(size_t idx) {
        static char buf[96];

        return node_ready_why(node, idx, buf, sizeof(buf));
}

Test(ready, not_ready_before_any_peer_compared) {
        cr_assert_not(node_ready(node));
        cr_assert_str_eq(why(0), "not compared yet");
}

Test(ready, ready_once_every_peer_sent_what_it_holds_newer) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent b[2] = { inv_file("sess_new", "n|i:2;", t), inv_file("sess_same", "s|i:1;", t) };

        put_file("sess_same", "s|i:1;", (long long)t);
        check("sess_same");
        compare(0, b, 2);             /* b holds sess_new, which we lack; sess_same we have */
        compare(1, NULL, 0);          /* c holds nothing */
        cr_assert_not(node_ready(node), "sess_new still to come from b");
        cr_assert_str_eq(why(0), "receiving: 1 of 1 to go");
        cr_assert_str_eq(why(1), "done");
        cr_assert_eq(push(0, &b[0], "n|i:2;"), PROTO_ST_OK);
        cr_assert(node_ready(node));
        cr_assert_str_eq(why(0), "done");
}

Test(ready, an_older_copy_here_is_wanted_a_newer_one_is_not) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent b[2] = { inv_file("sess_oldhere", "v|i:2;", t), inv_file("sess_newhere", "w|i:1;", t - 50) };

        put_file("sess_oldhere", "v|i:1;", (long long)(t - 10));
        put_file("sess_newhere", "w|i:2;", (long long)t);
        check("sess_oldhere");
        check("sess_newhere");
        compare(0, b, 2);
        compare(1, NULL, 0);
        cr_assert_str_eq(why(0), "receiving: 1 of 1 to go", "only the one b holds newer");
        cr_assert_eq(push(0, &b[0], "v|i:2;"), PROTO_ST_OK);
        cr_assert(node_ready(node));
}

Test(ready, a_logout_made_while_down_is_wanted_too) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent tomb = { .kind = PROTO_KIND_DESTROY };
        struct proto_msg del = { .type = PROTO_DELETE, .kind = PROTO_KIND_DESTROY }, ack;

        put_file("sess_gone", "g|i:1;", (long long)t);
        check("sess_gone");
        strcpy(tomb.name, "sess_gone");
        tomb.ver.mtime_ns = (t + 10) * 1000000000ull;   /* destroyed after our version */
        compare(0, &tomb, 1);
        compare(1, NULL, 0);
        cr_assert_not(node_ready(node), "the logout is not here yet");
        strcpy(del.name, "sess_gone");
        del.ver = tomb.ver;
        node_recv(node, 0, &del, &ack);
        cr_assert_eq(ack.status, PROTO_ST_OK);
        cr_assert(node_ready(node));
        cr_assert_eq(faccessat(dirfd_, "sess_gone", F_OK, AT_SYMLINK_NOFOLLOW), -1, "and it is gone here");
}

Test(ready, arriving_from_another_peer_or_written_here_counts) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent b = inv_file("sess_x", "x|i:2;", t), c = inv_file("sess_y", "y|i:2;", t);

        compare(0, &b, 1);
        compare(1, &c, 1);
        cr_assert_eq(push(1, &b, "x|i:2;"), PROTO_ST_OK, "b's version comes through c");
        cr_assert_str_eq(why(0), "done", "b has nothing newer than what is here now");
        put_file("sess_y", "y|i:3;", (long long)(t + 5));   /* PHP writes it here, newer than c's */
        check("sess_y");
        cr_assert(node_ready(node));
}

Test(ready, a_refused_frame_ends_the_wait_for_it) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent b = inv_file("sess_bad", "b|i:1;", t);

        compare(0, &b, 1);
        compare(1, NULL, 0);
        cr_assert_eq(push(0, &b, "not the content of that hash"), PROTO_ST_REJECT);
        cr_assert(node_ready(node), "a frame that cannot be taken would never come otherwise");
}

Test(ready, a_peer_without_progress_is_not_waited_for) {
        uint64_t t = now_s() - 100;
        struct proto_inv_ent b = inv_file("sess_slow", "s|i:1;", t);

        conf.ready_timeout_ms = 200;
        compare(0, &b, 1);   /* b compared, then sends nothing */
        cr_assert_not(node_ready(node), "c not compared yet, b receiving");
        run_for(300);
        cr_assert(node_ready(node), "both stalled past ready_timeout");
        cr_assert_not_null(strstr(why(1), "not waited for"), "c: %s", why(1));
}

Test(ready, stays_ready_once_ready) {
        compare(0, NULL, 0);
        compare(1, NULL, 0);
        cr_assert(node_ready(node));
        compare(0, NULL, 0);   /* a periodic catch-up later */
        cr_assert(node_ready(node));
}

Test(ready, no_peers_is_ready_at_once) {
        node_free(node);
        conf.n_peers = 0;
        cr_assert_eq(node_new(&conf, loop, dirfd_, &node), 0);
        cr_assert(node_ready(node));
}

Test(ready, names_that_are_no_sessions_are_not_waited_for) {
        struct proto_inv_ent b = inv_file("sess_a_b", "x", now_s() - 100);   /* "_" is not an id character */

        compare(0, &b, 1);
        compare(1, NULL, 0);
        cr_assert(node_ready(node), "a peer cannot make this node wait for a name it would refuse");
}
