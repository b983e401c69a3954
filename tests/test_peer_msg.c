/* The pushing side's handlers of the peer's frames (daemon/peer_msg.c):
 * the HELLO check, the inventory fed to the node's catch-up, and ACKs in
 * order. A struct peer from peer_new (never started: no connection) on the
 * node fixture (peers "b" = 0 and "c" = 1). Frames are built with the
 * encoders and decoded, as they would arrive. */
#include <stdbool.h>
#include <time.h>

#include "daemon/peer.h"
#include "daemon/peer_int.h"
#include "lib/sess.h"
#include "proto/buf.h"
#include "proto/msg.h"
#include "tests/fixture_node.h"

static struct peer *pb, *pc;   /* peers "b" and "c" */
static struct proto_wr wr;

static void pm_setup(void) {
        setup();
        conf.clock_skew_warn_ms = 2000;
        conf.resync_interval_ms = 60000;
        cr_assert_eq(peer_new(node, &conf, loop, 0, &pb), 0);
        cr_assert_eq(peer_new(node, &conf, loop, 1, &pc), 0);
        cr_assert_eq(pb->node, node);
        cr_assert_eq(pb->idx, 0);
        cr_assert_str_eq(peer_name(pb), "b");
        cr_assert_str_eq(peer_name(pc), "c");
        pb->hello_ns = pc->hello_ns = loop_realtime_ns();
        proto_wr_init(&wr);
}

static void pm_teardown(void) {
        proto_wr_free(&wr);
        peer_free(pb);
        peer_free(pc);
        teardown();
}

TestSuite(peer_msg, .init = pm_setup, .fini = pm_teardown);

static uint64_t ago_ns(uint64_t seconds) {
        return ((uint64_t)time(NULL) - seconds) * 1000000000ull;
}

/* Decode the one frame wr holds into *m (data points into wr). */
static void decode_wr(struct proto_msg *m) {
        size_t flen = 0;

        cr_assert_eq(proto_frame_len(wr.buf, wr.len, &flen), 0);
        cr_assert_eq(flen, wr.len);
        cr_assert_eq(proto_msg_decode(wr.buf, wr.len, m), 0);
}

static void hello(const char *from, const char *to, uint64_t clock_ns, struct proto_msg *m) {
        struct proto_msg h;

        memset(&h, 0, sizeof(h));
        h.type = PROTO_HELLO;
        h.clock_ns = clock_ns;
        strcpy(h.node, from);
        strcpy(h.to, to);
        proto_wr_reset(&wr);
        cr_assert_eq(proto_msg_encode(&wr, &h), 0);
        decode_wr(m);
        cr_assert_eq(m->type, PROTO_HELLO);
}

Test(peer_msg, hello_from_the_wrong_node_names_both) {
        char why[PEER_WHY_MAX] = "";
        struct proto_msg m;

        hello("x", "a", loop_realtime_ns(), &m);
        cr_assert_eq(peer_msg_hello(pb, &m, why), -EPROTO);
        cr_assert_not_null(strstr(why, "\"x\""), "why names the node reached: %s", why);
        cr_assert_not_null(strstr(why, "\"b\""), "and the one meant: %s", why);
        /* Peer c's connection reached b: also wrong. */
        why[0] = 0;
        hello("b", "a", loop_realtime_ns(), &m);
        cr_assert_eq(peer_msg_hello(pc, &m, why), -EPROTO);
        cr_assert_not_null(strstr(why, "\"b\""), "%s", why);
        cr_assert_not_null(strstr(why, "\"c\""), "%s", why);
}

Test(peer_msg, hello_meant_for_another_node_is_refused) {
        char why[PEER_WHY_MAX] = "";
        struct proto_msg m;

        hello("b", "z", loop_realtime_ns(), &m);
        cr_assert_eq(peer_msg_hello(pb, &m, why), -EPROTO);
        cr_assert_neq(why[0], 0, "a reason is given");
        cr_assert_not_null(strstr(why, "\"z\""), "%s", why);
}

Test(peer_msg, the_right_hello_is_accepted) {
        char why[PEER_WHY_MAX] = "";
        struct proto_msg m;

        hello("b", "a", loop_realtime_ns(), &m);
        cr_assert_eq(peer_msg_hello(pb, &m, why), 0, "%s", why);
        hello("c", "a", loop_realtime_ns(), &m);
        cr_assert_eq(peer_msg_hello(pc, &m, why), 0, "%s", why);
        /* A clock far off is a warning, not a refusal. */
        hello("b", "a", loop_realtime_ns() + 3600ull * 1000000000ull, &m);
        cr_assert_eq(peer_msg_hello(pb, &m, why), 0, "%s", why);
        hello("b", "a", 1, &m);
        cr_assert_eq(peer_msg_hello(pb, &m, why), 0, "%s", why);
}

/* --- inventory --- */

struct inv_item {
        const char *name;
        uint8_t kind;
        struct proto_ver ver;
};

/* Encode items as one INV frame, decode it and feed it to p. */
static int feed_inv(struct peer *p, const struct inv_item *items, size_t n, char why[PEER_WHY_MAX]) {
        struct proto_msg m;
        size_t start;

        proto_wr_reset(&wr);
        start = proto_inv_begin(&wr, 0);
        for (size_t i = 0; i < n; i++)
                proto_inv_add(&wr, items[i].name, items[i].kind, &items[i].ver);
        cr_assert_eq(proto_inv_end(&wr, start, (uint32_t)n), 0);
        decode_wr(&m);
        cr_assert_eq(m.type, PROTO_INV);
        cr_assert_eq(m.count, n);
        return peer_msg_inv(p, &m, why);
}

static void put_at(const char *name, const char *content, uint64_t mtime_ns) {
        char path[256];
        struct timespec ts[2];

        put_file(name, content, 0);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        ts[0].tv_sec = ts[1].tv_sec = (time_t)(mtime_ns / 1000000000ull);
        ts[0].tv_nsec = ts[1].tv_nsec = (long)(mtime_ns % 1000000000ull);
        cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool dirty(const char *name, size_t idx) {
        struct node_ent *e = node_get(node, name);

        cr_assert_not_null(e, "%s", name);
        return e->peer[idx].dirty;
}

Test(peer_msg, inventory_marks_what_the_peer_lacks_or_holds_older) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *old, *eq, *newer, *lack, *tomb, *tomb_lost;
        struct proto_ver tv;

        put_at("sess_old", "o|i:2;", ago_ns(100));
        put_at("sess_eq", "e|i:1;", ago_ns(100));
        put_at("sess_newer", "n|i:1;", ago_ns(100));
        put_at("sess_lack", "l|i:1;", ago_ns(100));
        put_at("sess_tomb", "t|i:1;", ago_ns(100));
        put_at("sess_tlost", "u|i:1;", ago_ns(100));
        old = check("sess_old");
        eq = check("sess_eq");
        newer = check("sess_newer");
        lack = check("sess_lack");
        check("sess_tomb");
        check("sess_tlost");
        rm_file("sess_tomb");    /* a logout here, now */
        rm_file("sess_tlost");
        tomb = check("sess_tomb");
        tomb_lost = check("sess_tlost");
        cr_assert_eq(tomb->kind, PROTO_KIND_DESTROY);
        cr_assert_eq(tomb_lost->kind, PROTO_KIND_DESTROY);
        tv = tomb->ver;
        drain(0);
        drain(1);
        cr_assert_eq(node_pending(node, 0), 0);

        node_catchup_begin(node, 0);   /* peer.c does this when the HELLO checks out */
        {
                struct inv_item a[] = {
                        { "sess_old", PROTO_KIND_FILE, { old->ver.mtime_ns - 1000000000ull, 77 } },
                        { "sess_eq", PROTO_KIND_FILE, eq->ver },
                        { "sess_theirs", PROTO_KIND_FILE, { ago_ns(5), 5 } },
                };
                struct inv_item b[] = {
                        { "sess_newer", PROTO_KIND_FILE, { newer->ver.mtime_ns + 1000000000ull, 9 } },
                        /* Their file is older than our logout: the logout goes. */
                        { "sess_tomb", PROTO_KIND_FILE, { tv.mtime_ns - 1000000000ull, 4 } },
                        /* Their file is newer than our logout: they keep it. */
                        { "sess_tlost", PROTO_KIND_FILE, { tomb_lost->ver.mtime_ns + 1000000000ull, 4 } },
                };

                cr_assert_eq(feed_inv(pb, a, 3, why), 0, "%s", why);
                cr_assert_eq(feed_inv(pb, b, 3, why), 0, "%s", why);
        }
        cr_assert(dirty("sess_old", 0), "the peer holds it older");
        cr_assert_not(dirty("sess_eq", 0), "the peer holds exactly this");
        cr_assert_not(dirty("sess_newer", 0), "the peer holds it newer");
        cr_assert(dirty("sess_tomb", 0), "a tombstone here beats their older file");
        cr_assert_not(dirty("sess_tlost", 0), "a logout does not beat a file written after it");
        cr_assert_not(dirty("sess_lack", 0), "not before INV_END: a later INV frame may list it");
        cr_assert_null(node_get(node, "sess_theirs"), "theirs alone: nothing made here");
        cr_assert_eq(peer_msg_inv_end(pb), 3, "sess_old, sess_tomb and sess_lack");
        cr_assert(dirty("sess_lack", 0), "not in its inventory: it lacks it");
        cr_assert(dirty("sess_old", 0));
        cr_assert(dirty("sess_tomb", 0));
        cr_assert_not(dirty("sess_eq", 0));
        cr_assert_not(dirty("sess_newer", 0));
        cr_assert_not(dirty("sess_tlost", 0));
        cr_assert_eq(node_pending(node, 0), 3);
        cr_assert_eq(node_pending(node, 1), 0, "peer b's inventory says nothing about peer c");
        cr_assert_eq(lack->peer[0].has_kind, VER_KIND_NONE);
        cr_assert_eq(newer->peer[0].has.mtime_ns, newer->ver.mtime_ns + 1000000000ull,
                     "what the peer holds is remembered");
}

/* A periodic catch-up: what became dirty earlier but the peer now holds
 * (it got it another way) is no longer pending. */
Test(peer_msg, a_later_inventory_clears_what_the_peer_now_holds) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *e;

        put_at("sess_x", "x|i:1;", ago_ns(50));
        e = check("sess_x");
        cr_assert_eq(node_pending(node, 0), 1);
        node_catchup_begin(node, 0);
        {
                struct inv_item a[] = { { "sess_x", PROTO_KIND_FILE, e->ver } };

                cr_assert_eq(feed_inv(pb, a, 1, why), 0, "%s", why);
        }
        cr_assert_eq(peer_msg_inv_end(pb), 0);
        cr_assert_eq(node_pending(node, 0), 0, "it holds it: nothing to send");
        cr_assert_eq(node_pending(node, 1), 1, "peer c still needs it");
}

Test(peer_msg, an_empty_inventory_means_the_peer_lacks_everything) {
        char why[PEER_WHY_MAX] = "";

        put_at("sess_1", "1", ago_ns(50));
        put_at("sess_2", "2", ago_ns(50));
        check("sess_1");
        check("sess_2");
        drain(0);
        drain(1);
        node_catchup_begin(node, 1);
        cr_assert_eq(feed_inv(pc, NULL, 0, why), 0, "%s", why);
        cr_assert_eq(peer_msg_inv_end(pc), 2);
        cr_assert_eq(node_pending(node, 1), 2);
        cr_assert_eq(node_pending(node, 0), 0);
}

Test(peer_msg, a_malformed_inventory_is_an_error_with_why) {
        char why[PEER_WHY_MAX] = "";
        struct proto_msg m;
        struct proto_ver v = { 1, 2 };

        /* One entry's bytes, but a count of two (decode would refuse this;
         * the handler must too). */
        proto_wr_reset(&wr);
        proto_inv_add(&wr, "sess_q", PROTO_KIND_FILE, &v);
        memset(&m, 0, sizeof(m));
        m.type = PROTO_INV;
        m.count = 2;
        m.data = wr.buf;
        m.data_len = wr.len;
        node_catchup_begin(node, 0);
        cr_assert_lt(peer_msg_inv(pb, &m, why), 0);
        cr_assert_neq(why[0], 0);
}

/* --- ACKs --- */

/* As peer_flush records a frame it sent. */
static void in_flight(struct peer *p, uint32_t seq) {
        p->sent_seq[(p->fl_head + p->in_flight) % PEER_WINDOW] = seq;
        p->in_flight++;
}

static int ack(struct peer *p, uint32_t ack_seq, uint8_t status, const char *name, const struct proto_ver *v,
               char why[PEER_WHY_MAX]) {
        struct proto_msg a, m;

        memset(&a, 0, sizeof(a));
        a.type = PROTO_ACK;
        a.seq = 1000 + ack_seq;
        a.ack_seq = ack_seq;
        a.status = status;
        strcpy(a.name, name);
        a.kind = PROTO_KIND_FILE;
        if (v && (status == PROTO_ST_OK || status == PROTO_ST_STALE))
                a.ver = *v;
        proto_wr_reset(&wr);
        cr_assert_eq(proto_msg_encode(&wr, &a), 0);
        decode_wr(&m);
        cr_assert_eq(m.type, PROTO_ACK);
        return peer_msg_ack(p, &m, why);
}

static struct node_ent *sent_file(const char *name) {
        struct node_ent *e;

        put_at(name, "f|i:1;", ago_ns(30));
        e = check(name);
        cr_assert_not_null(e);
        return e;
}

Test(peer_msg, an_ack_for_the_oldest_frame_in_flight) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_a");

        in_flight(pb, 10);
        in_flight(pb, 11);
        cr_assert_eq(ack(pb, 10, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(pb->in_flight, 1);
        cr_assert_eq(peer_in_flight(pb), 1);
        cr_assert_eq(node_stats(node, 0)->applied, 1, "passed on to the node");
        cr_assert_eq(ack(pb, 11, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(pb->in_flight, 0);
        cr_assert_eq(node_stats(node, 0)->applied, 2);
        cr_assert_eq(node_stats(node, 1)->applied, 0);
}

Test(peer_msg, an_ack_out_of_order_is_a_protocol_error) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_a");

        in_flight(pb, 20);
        in_flight(pb, 21);
        cr_assert_eq(ack(pb, 21, PROTO_ST_OK, "sess_a", &e->ver, why), -EPROTO);
        cr_assert_not_null(strstr(why, "21"), "%s", why);
        cr_assert_not_null(strstr(why, "20"), "names the one expected: %s", why);
        cr_assert_eq(pb->in_flight, 2, "nothing consumed");
        cr_assert_eq(node_stats(node, 0)->applied, 0, "not passed on");
        cr_assert_eq(ack(pb, 20, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(ack(pb, 20, PROTO_ST_OK, "sess_a", &e->ver, why), -EPROTO, "a repeated ACK: %s", why);
}

Test(peer_msg, an_ack_with_nothing_in_flight_is_a_protocol_error) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_a");

        cr_assert_eq(ack(pb, 0, PROTO_ST_OK, "sess_a", &e->ver, why), -EPROTO);
        cr_assert_neq(why[0], 0);
        cr_assert_eq(pb->in_flight, 0);
        cr_assert_eq(node_stats(node, 0)->applied, 0);
}

Test(peer_msg, acks_in_order_across_the_end_of_the_ring) {
        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_a");

        pb->fl_head = PEER_WINDOW - 1;
        in_flight(pb, 500);
        in_flight(pb, 501);   /* slot 0 */
        in_flight(pb, 502);
        cr_assert_eq(ack(pb, 500, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(pb->fl_head, 0);
        cr_assert_eq(ack(pb, 502, PROTO_ST_OK, "sess_a", &e->ver, why), -EPROTO);
        cr_assert_eq(ack(pb, 501, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(ack(pb, 502, PROTO_ST_OK, "sess_a", &e->ver, why), 0, "%s", why);
        cr_assert_eq(pb->in_flight, 0);
}

Test(peer_msg, a_retry_names_the_file_until_it_goes_through) {
        char tag[SESS_TAG_LEN];

        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_full");

        in_flight(pb, 1);
        in_flight(pb, 2);
        cr_assert_eq(ack(pb, 1, PROTO_ST_RETRY, "sess_full", NULL, why), 0, "%s", why);
        cr_assert_not_null(strstr(peer_last_error(pb), sess_tag("sess_full", tag)), "last_error: %s", peer_last_error(pb));
        cr_assert_null(strstr(peer_last_error(pb), "sess_full"), "never the id itself: %s", peer_last_error(pb));
        cr_assert_eq(ack(pb, 2, PROTO_ST_OK, "sess_full", &e->ver, why), 0, "%s", why);
        cr_assert_str_eq(peer_last_error(pb), "", "cleared once that file went through: %s", peer_last_error(pb));
}

/* The error is about sess_full: an OK for another file says nothing about
 * it, and the OK for sess_full that follows clears it. */
Test(peer_msg, a_retry_error_survives_other_files_and_clears_with_its_own) {
        char tag[SESS_TAG_LEN];

        char why[PEER_WHY_MAX] = "";
        struct node_ent *e = sent_file("sess_full"), *o = sent_file("sess_other");

        in_flight(pb, 1);
        in_flight(pb, 2);
        in_flight(pb, 3);
        cr_assert_eq(ack(pb, 1, PROTO_ST_RETRY, "sess_full", NULL, why), 0, "%s", why);
        cr_assert_eq(ack(pb, 2, PROTO_ST_OK, "sess_other", &o->ver, why), 0, "%s", why);
        cr_assert_not_null(strstr(peer_last_error(pb), sess_tag("sess_full", tag)), "still failing: %s", peer_last_error(pb));
        cr_assert_null(strstr(peer_last_error(pb), "sess_full"), "never the id itself: %s", peer_last_error(pb));
        cr_assert_eq(ack(pb, 3, PROTO_ST_OK, "sess_full", &e->ver, why), 0, "%s", why);
        cr_assert_str_eq(peer_last_error(pb), "", "cleared once sess_full went through: %s", peer_last_error(pb));
}

Test(peer_msg, a_reject_sets_last_error) {
        char tag[SESS_TAG_LEN];

        char why[PEER_WHY_MAX] = "";

        sent_file("sess_bad");
        in_flight(pb, 7);
        cr_assert_eq(ack(pb, 7, PROTO_ST_REJECT, "sess_bad", NULL, why), 0, "%s", why);
        cr_assert_not_null(strstr(peer_last_error(pb), sess_tag("sess_bad", tag)), "last_error: %s", peer_last_error(pb));
        cr_assert_null(strstr(peer_last_error(pb), "sess_bad"), "never the id itself: %s", peer_last_error(pb));
        cr_assert_eq(node_stats(node, 0)->rejected, 1);
        cr_assert_eq(pb->in_flight, 0);
}

Test(peer_msg, stale_and_unknown_acks_are_no_errors) {
        char why[PEER_WHY_MAX] = "";
        struct proto_ver theirs = { ago_ns(1), 3 };

        sent_file("sess_s");
        in_flight(pb, 1);
        in_flight(pb, 2);
        cr_assert_eq(ack(pb, 1, PROTO_ST_STALE, "sess_s", &theirs, why), 0, "%s", why);
        cr_assert_eq(node_stats(node, 0)->conflicts, 1);
        cr_assert_eq(ack(pb, 2, PROTO_ST_OK, "sess_gone", &theirs, why), 0, "%s", why);
        cr_assert_eq(pb->in_flight, 0, "consumed all the same");
        cr_assert_str_eq(peer_last_error(pb), "");
}
