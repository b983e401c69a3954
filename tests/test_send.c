/* The sender (daemon/node_send.c): which frame node_send_next appends for
 * one dirty entry and one peer (FILE, DELTA, TOUCH, DELETE or nothing),
 * decoded back with proto_frame_len + proto_msg_decode; what node_ack does
 * with each status; and the byte counters. On a real directory, through
 * the node fixture (peers "b" = 0 and "c" = 1, never connected). */
#include <stdbool.h>
#include <time.h>

#include "lib/delta.h"
#include "proto/buf.h"
#include "proto/msg.h"
#include "tests/fixture_node.h"

static struct proto_wr wr;

static void send_setup(void) {
        setup();
        proto_wr_init(&wr);
}

static void send_teardown(void) {
        proto_wr_free(&wr);
        teardown();
}

TestSuite(send, .init = send_setup, .fini = send_teardown);

static uint64_t now_s(void) {
        return (uint64_t)time(NULL);
}

/* A recent mtime (not forgettable, not from the future), with ns set. */
static uint64_t ago_ns(uint64_t seconds, uint32_t ns) {
        return (now_s() - seconds) * 1000000000ull + ns;
}

static void path_of(char path[256], const char *name) {
        snprintf(path, 256, "%s/%s", dir, name);
}

static void set_mtime(const char *name, uint64_t mtime_ns) {
        struct timespec ts[2];
        char path[256];

        path_of(path, name);
        ts[0].tv_sec = ts[1].tv_sec = (time_t)(mtime_ns / 1000000000ull);
        ts[0].tv_nsec = ts[1].tv_nsec = (long)(mtime_ns % 1000000000ull);
        cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Rewrite name in place (same inode, as PHP does) with exactly these
 * bytes and this mtime. */
static void write_at(const char *name, const void *data, size_t len, uint64_t mtime_ns) {
        char path[256];
        int fd;

        path_of(path, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, data, len), (ssize_t)len);
        cr_assert_eq(close(fd), 0);
        set_mtime(name, mtime_ns);
}

/* Session-like content of exactly len bytes, varied by seed. */
static uint8_t *make_content(size_t len, unsigned seed) {
        uint8_t *p = malloc(len + 64);
        size_t off = 0;

        cr_assert_not_null(p);
        for (unsigned i = 0; off < len; i++)
                off += (size_t)sprintf((char *)p + off, "k%u|s:24:\"v-%08x-%08x\";", i, seed * 2654435761u + i,
                                       i * 40503u);
        return p;
}

/* Bytes of the whole-file frame for name with len bytes of content: what
 * bytes_full counts (header, u8-length name, ver, u32-length blob). */
static uint64_t full_frame_len(const char *name, size_t len) {
        return PROTO_HDR_LEN + 1 + strlen(name) + 16 + 4 + len;
}

/* node_send_next for peer idx into an emptied wr. When a frame was
 * appended, it must be exactly one whole frame, and *m is its decoding
 * (m->data points into wr: valid until the next send). */
static int send_one(size_t idx, uint32_t seq, struct proto_msg *m) {
        size_t flen = 0;
        int r;

        proto_wr_reset(&wr);
        r = node_send_next(node, idx, &wr, seq);
        if (r != 1) {
                cr_assert_eq(wr.len, 0, "nothing appended when node_send_next returns %d", r);
                return r;
        }
        cr_assert_gt(wr.len, 0);
        cr_assert_eq(proto_frame_len(wr.buf, wr.len, &flen), 0);
        cr_assert_eq(flen, wr.len, "exactly one frame appended");
        cr_assert_eq(proto_msg_decode(wr.buf, wr.len, m), 0);
        cr_assert_eq(m->seq, seq);
        return r;
}

static enum node_ack_result ack(size_t idx, const char *name, uint8_t status, uint8_t kind, const struct proto_ver *v) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_ACK;
        strcpy(m.name, name);
        m.status = status;
        m.kind = kind;
        if (v)
                m.ver = *v;
        return node_ack(node, idx, &m);
}

/* Write, check, send the FILE to peer 0, have it acknowledged and end the
 * sending turn (as daemon_turn does after peer_flush): peer 0 then holds
 * exactly this version. Returns the entry. */
static struct node_ent *held_by_b(const char *name, const void *data, size_t len, uint64_t mtime_ns) {
        struct proto_msg m;
        struct node_ent *e;

        write_at(name, data, len, mtime_ns);
        e = check(name);
        cr_assert_not_null(e);
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(ack(0, name, PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        node_end_turn(node);
        return e;
}

/* A file >= 512 bytes that peer 0 holds and acknowledged, the turn ended
 * after that send, and then a few bytes changed and checked: the setting
 * of a DELTA. *old_ret, *new_ret: the contents (free). */
static struct node_ent *changed_after_basis(const char *name, size_t len, uint8_t **old_ret, uint8_t **new_ret,
                                            struct proto_ver *old_ver) {
        uint8_t *old = make_content(len, 1), *cur = malloc(len);
        struct node_ent *e;

        cr_assert_not_null(cur);
        e = held_by_b(name, old, len, ago_ns(100, 111));   /* the turn ended: the basis moved */
        *old_ver = e->ver;
        cr_assert_not_null(e->sig, "a sent version >= 512 bytes becomes the delta basis at the turn's end");
        cr_assert_eq(e->sig_hash, old_ver->hash);
        memcpy(cur, old, len);
        memcpy(cur + len / 2, "CHANGED!", 8);
        write_at(name, cur, len, ago_ns(50, 222));
        check(name);
        cr_assert_neq(e->ver.hash, old_ver->hash);
        *old_ret = old;
        *new_ret = cur;
        return e;
}

Test(send, a_new_file_goes_whole_with_its_exact_version) {
        static const char content[] = "user|s:5:\"alice\";cart|a:0:{}";
        const struct node_stats *st = node_stats(node, 0);
        uint64_t t = ago_ns(30, 123456789);
        struct proto_msg m;
        struct node_ent *e;

        write_at("sess_new", content, strlen(content), t);
        e = check("sess_new");
        cr_assert_eq(send_one(0, 42, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_str_eq(m.name, "sess_new");
        cr_assert_eq(m.ver.mtime_ns, t, "the mtime to the ns: %llu vs %llu", (unsigned long long)m.ver.mtime_ns,
                     (unsigned long long)t);
        cr_assert_eq(m.ver.hash, sess_hash(content, strlen(content)));
        cr_assert_eq(m.ver.hash, e->ver.hash);
        cr_assert_eq(m.size, strlen(content));
        cr_assert_eq(m.data_len, strlen(content));
        cr_assert_arr_eq(m.data, content, strlen(content));
        cr_assert_eq(st->bytes_sent, wr.len, "bytes_sent is the frame's bytes");
        cr_assert_eq(st->bytes_full, full_frame_len("sess_new", strlen(content)));
        cr_assert_eq(st->bytes_full, st->bytes_sent, "a FILE saves nothing");
        cr_assert_eq(send_one(0, 43, &m), 0, "sent once");
        /* Peer c needs it too, independently. */
        cr_assert_eq(send_one(1, 7, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE);
        cr_assert_eq(m.ver.mtime_ns, t);
        cr_assert_eq(node_stats(node, 1)->bytes_sent, wr.len);
}

Test(send, a_peer_holding_exactly_this_version_gets_nothing) {
        static const char content[] = "a|i:1;";
        const struct node_stats *st = node_stats(node, 0);
        struct proto_msg m;
        struct node_ent *e = held_by_b("sess_held", content, strlen(content), ago_ns(20, 5));
        uint64_t sent = st->bytes_sent, full = st->bytes_full;

        cr_assert_eq(st->applied, 1);
        node_mark_dirty(node, e, 0);   /* e.g. a catch-up that could not tell */
        cr_assert_eq(node_pending(node, 0), 1);
        cr_assert_eq(send_one(0, 2, &m), 0);
        cr_assert_eq(node_pending(node, 0), 0, "and nothing left for it");
        cr_assert_eq(st->bytes_sent, sent);
        cr_assert_eq(st->bytes_full, full);
        /* Peer c does not hold it: it still gets the file. */
        cr_assert_eq(send_one(1, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE);
}

Test(send, same_bytes_new_mtime_is_a_touch) {
        static const char content[] = "user|s:3:\"bob\";";
        const struct node_stats *st = node_stats(node, 0);
        uint64_t t2 = ago_ns(10, 999), sent, full;
        struct proto_msg m;
        struct node_ent *e = held_by_b("sess_t", content, strlen(content), ago_ns(40, 1));
        uint64_t h = e->ver.hash;

        drain(1);
        sent = st->bytes_sent;
        full = st->bytes_full;
        set_mtime("sess_t", t2);   /* PHP's lazy_write: only the mtime */
        check("sess_t");
        cr_assert_eq(e->ver.mtime_ns, t2);
        cr_assert_eq(node_pending(node, 0), 1);
        cr_assert_eq(send_one(0, 3, &m), 1);
        cr_assert_eq(m.type, PROTO_TOUCH, "%s", proto_type_name(m.type));
        cr_assert_str_eq(m.name, "sess_t");
        cr_assert_eq(m.ver.mtime_ns, t2);
        cr_assert_eq(m.ver.hash, h, "same content, same hash");
        cr_assert_eq(st->bytes_sent - sent, wr.len);
        cr_assert_eq(st->bytes_full - full, full_frame_len("sess_t", strlen(content)));
        cr_assert_geq(st->bytes_full - full, st->bytes_sent - sent);
        cr_assert_gt(st->bytes_full - full, st->bytes_sent - sent, "a touch is smaller than the file");
        /* Peer c never got the file: a touch would mean nothing to it. */
        cr_assert_eq(send_one(1, 3, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.ver.mtime_ns, t2);
}

Test(send, a_small_change_to_a_large_file_is_a_delta_that_applies) {
        const struct node_stats *st = node_stats(node, 0);
        const size_t len = 8192;
        struct proto_ver v1;
        uint8_t *old, *cur, *out = NULL;
        size_t out_len = 0;
        uint64_t sent = st->bytes_sent, full = st->bytes_full;
        struct proto_msg m;
        struct node_ent *e = changed_after_basis("sess_big", len, &old, &cur, &v1);

        sent = st->bytes_sent;
        full = st->bytes_full;
        cr_assert_eq(send_one(0, 9, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_str_eq(m.name, "sess_big");
        cr_assert_eq(m.basis_hash, v1.hash, "against the version peer b acknowledged");
        cr_assert_eq(m.size, len, "size of the result");
        cr_assert_eq(m.ver.mtime_ns, e->ver.mtime_ns);
        cr_assert_eq(m.ver.hash, sess_hash(cur, len));
        cr_assert_lt(m.data_len + 16, len, "worth it: %zu bytes of delta", m.data_len);
        cr_assert_eq(delta_patch(old, len, m.data, m.data_len, len, &out, &out_len), 0);
        cr_assert_eq(out_len, len);
        cr_assert_arr_eq(out, cur, len, "delta_patch(old, delta) == new");
        cr_assert_eq(st->bytes_sent - sent, wr.len);
        cr_assert_eq(st->bytes_full - full, full_frame_len("sess_big", len));
        cr_assert_gt(st->bytes_full - full, st->bytes_sent - sent);
        /* Peer c holds no basis: the whole file. */
        cr_assert_eq(send_one(1, 9, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.data_len, len);
        cr_assert_arr_eq(m.data, cur, len);
        free(out);
        free(old);
        free(cur);
}

/* The basis moves at a turn's end only to a version some peer was sent:
 * a version checked and sent to nobody leaves the old basis, so the next
 * change is still a delta against what peer b holds; once a version went
 * out, the basis is that version. */
Test(send, the_basis_moves_only_to_a_version_some_peer_was_sent) {
        const size_t len = 8192;
        struct proto_ver v1;
        uint8_t *old, *mid, *cur = malloc(len), *out = NULL;
        size_t out_len = 0;
        struct proto_msg m;
        struct node_ent *e = changed_after_basis("sess_mv", len, &old, &mid, &v1);

        cr_assert_not_null(cur);
        drain(0);   /* v2 goes to nobody */
        drain(1);
        node_end_turn(node);
        cr_assert_eq(e->sig_hash, v1.hash, "nobody was sent v2: the basis stays v1");
        memcpy(cur, mid, len);
        memcpy(cur + 100, "THIRD", 5);
        write_at("sess_mv", cur, len, ago_ns(20, 333));
        check("sess_mv");
        cr_assert_eq(e->sig_hash, v1.hash);
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, v1.hash);
        cr_assert_eq(delta_patch(old, len, m.data, m.data_len, len, &out, &out_len), 0);
        cr_assert_eq(out_len, len);
        cr_assert_arr_eq(out, cur, len);
        cr_assert_eq(e->sig_hash, v1.hash, "not at the send");
        node_end_turn(node);
        cr_assert_eq(e->sig_hash, e->ver.hash, "at the turn's end: v3 went to peer b");
        free(out);
        free(old);
        free(mid);
        free(cur);
}

/* Both peers hold v1 (the basis); v2 goes to peer b in one turn and to
 * peer c only in a later one (its window was full). The basis moves to v2
 * at the first turn's end, and v1 is kept as the older basis because peer
 * c still holds it: c's v2 is a delta against v1, not the whole file; once
 * c was sent v2 nobody holds v1 and it is dropped. v3 is then a delta
 * against v2 for both. */
Test(send, a_peer_sent_a_version_a_turn_late_still_gets_a_delta) {
        const size_t len = 8192;
        uint8_t *v1 = make_content(len, 7), *v2 = malloc(len), *v3 = malloc(len), *out = NULL;
        size_t out_len = 0;
        struct proto_ver ver1, ver2;
        struct proto_msg m;
        struct node_ent *e;

        cr_assert(v2 && v3);
        write_at("sess_lag", v1, len, ago_ns(100, 1));
        e = check("sess_lag");
        for (size_t i = 0; i < 2; i++) {
                cr_assert_eq(send_one(i, 1, &m), 1);
                cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
                cr_assert_eq(ack(i, "sess_lag", PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        }
        node_end_turn(node);
        ver1 = e->ver;
        cr_assert_eq(e->sig_hash, ver1.hash);
        cr_assert_null(e->older);

        memcpy(v2, v1, len);
        memcpy(v2 + 3000, "SECOND", 6);
        write_at("sess_lag", v2, len, ago_ns(50, 2));
        check("sess_lag");
        ver2 = e->ver;
        cr_assert_eq(send_one(0, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, ver1.hash);
        node_end_turn(node);   /* peer c was not sent v2 this turn */
        cr_assert_eq(e->sig_hash, ver2.hash, "the newest basis is what peer b was sent");
        cr_assert_not_null(e->older, "v1 is kept: peer c still holds it");
        cr_assert_eq(e->older->hash, ver1.hash);

        cr_assert_eq(send_one(1, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "a turn late, still a delta, not %s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, ver1.hash, "against the basis peer c holds");
        cr_assert_eq(m.ver.hash, ver2.hash);
        cr_assert_eq(delta_patch(v1, len, m.data, m.data_len, len, &out, &out_len), 0);
        cr_assert_eq(out_len, len);
        cr_assert_arr_eq(out, v2, len, "delta_patch(v1, delta) == v2");
        free(out);
        out = NULL;
        node_end_turn(node);
        cr_assert_null(e->older, "nobody holds v1 any more: its signature is freed");
        cr_assert_eq(node->older_bytes, 0);
        cr_assert_null(node->older_head);

        memcpy(v3, v2, len);
        memcpy(v3 + 6000, "THIRD", 5);
        write_at("sess_lag", v3, len, ago_ns(20, 3));
        check("sess_lag");
        for (size_t i = 0; i < 2; i++) {
                cr_assert_eq(send_one(i, 3, &m), 1);
                cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
                cr_assert_eq(m.basis_hash, ver2.hash);
                cr_assert_eq(delta_patch(v2, len, m.data, m.data_len, len, &out, &out_len), 0);
                cr_assert_arr_eq(out, v3, len);
                free(out);
                out = NULL;
        }
        free(v1);
        free(v2);
        free(v3);
}

/* A peer not heard from for 30 s (down: no frame asked for, no ACK) is not
 * counted as holding a basis: no older signature is kept for it, so a
 * peer that is down does not make the sender keep two of every session. */
Test(send, a_peer_not_heard_from_keeps_no_older_basis) {
        const size_t len = 8192;
        uint8_t *v1 = make_content(len, 13), *v2 = malloc(len);
        struct proto_msg m;
        struct node_ent *e;

        cr_assert_not_null(v2);
        write_at("sess_down", v1, len, ago_ns(100, 1));
        e = check("sess_down");
        for (size_t i = 0; i < 2; i++) {
                cr_assert_eq(send_one(i, 1, &m), 1);
                cr_assert_eq(ack(i, "sess_down", PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        }
        node_end_turn(node);
        memcpy(v2, v1, len);
        memcpy(v2 + 10, "SECOND", 6);
        write_at("sess_down", v2, len, ago_ns(50, 2));
        check("sess_down");
        cr_assert_eq(send_one(0, 2, &m), 1);
        node->peer[1].live_ms = loop_clock_ms() - 31000;   /* peer c went away 31 s ago */
        node_end_turn(node);
        cr_assert_eq(e->sig_hash, e->ver.hash);
        cr_assert_null(e->older, "peer c is down: its basis is not kept");
        cr_assert_eq(node->older_bytes, 0);
        free(v1);
        free(v2);
}

/* A BUSY on a delta against the older basis: the peer still holds that
 * older basis, so it is kept and the retry is a delta against it again. */
Test(send, after_busy_on_an_older_basis_the_retry_is_a_delta_against_it) {
        const size_t len = 8192;
        uint8_t *v1 = make_content(len, 9), *v2 = malloc(len);
        struct proto_ver ver1, none = { 0, 0 };
        struct proto_msg m;
        struct node_ent *e;

        cr_assert_not_null(v2);
        write_at("sess_lagb", v1, len, ago_ns(100, 1));
        e = check("sess_lagb");
        for (size_t i = 0; i < 2; i++) {
                cr_assert_eq(send_one(i, 1, &m), 1);
                cr_assert_eq(ack(i, "sess_lagb", PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        }
        node_end_turn(node);
        ver1 = e->ver;
        memcpy(v2, v1, len);
        memcpy(v2 + 10, "SECOND", 6);
        write_at("sess_lagb", v2, len, ago_ns(50, 2));
        check("sess_lagb");
        cr_assert_eq(send_one(0, 2, &m), 1);
        node_end_turn(node);
        cr_assert_eq(send_one(1, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, ver1.hash);
        cr_assert_eq(ack(1, "sess_lagb", PROTO_ST_BUSY, PROTO_KIND_FILE, &none), NODE_ACK_DONE);
        node_end_turn(node);
        cr_assert_not_null(e->older, "peer c still holds v1");
        run_for(60);
        cr_assert_eq(send_one(1, 3, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, ver1.hash);
        free(v1);
        free(v2);
}

/* Two peers holding the same basis get the same delta, made once in the
 * turn: the second send finds it in the turn cache. */
Test(send, one_delta_per_turn_serves_every_peer_on_that_basis) {
        const size_t len = 8192;
        uint8_t *v1 = make_content(len, 11), *v2 = malloc(len), *first = malloc(64 << 10);
        struct proto_msg m;
        struct node_ent *e;
        size_t flen;

        cr_assert(v2 && first);
        write_at("sess_two", v1, len, ago_ns(100, 1));
        e = check("sess_two");
        for (size_t i = 0; i < 2; i++) {
                cr_assert_eq(send_one(i, 1, &m), 1);
                cr_assert_eq(ack(i, "sess_two", PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        }
        node_end_turn(node);
        memcpy(v2, v1, len);
        memcpy(v2 + 4000, "SECOND", 6);
        write_at("sess_two", v2, len, ago_ns(50, 2));
        node_check(node, "sess_two");
        node_run_checks(node);   /* read in this turn, which goes on */
        cr_assert_eq(send_one(0, 5, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_gt(e->tdlen, 0, "the delta is kept for the turn");
        cr_assert_eq(m.data_len, e->tdlen);
        flen = wr.len;
        memcpy(first, wr.buf, flen);
        cr_assert_eq(send_one(1, 5, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(wr.len, flen);
        cr_assert_arr_eq(wr.buf, first, flen, "the same frame for both peers");
        node_end_turn(node);
        cr_assert_eq(e->tdlen, 0);
        free(v1);
        free(v2);
        free(first);
}

Test(send, a_small_file_changed_goes_whole_never_as_a_delta) {
        const size_t len = 511;   /* just under the 512-byte delta floor */
        uint8_t *old = make_content(len, 5), *cur = malloc(len);
        struct proto_msg m;
        struct node_ent *e;

        cr_assert_not_null(cur);
        e = held_by_b("sess_small", old, len, ago_ns(100, 0));
        cr_assert_null(e->sig, "no signature kept under 512 bytes");
        memcpy(cur, old, len);
        cur[200] ^= 1;
        write_at("sess_small", cur, len, ago_ns(50, 0));
        check("sess_small");
        cr_assert_eq(send_one(0, 4, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.data_len, len);
        cr_assert_arr_eq(m.data, cur, len);
        free(old);
        free(cur);
}

Test(send, after_need_full_the_next_send_is_the_whole_file) {
        const struct node_stats *st = node_stats(node, 0);
        const size_t len = 8192;
        struct proto_ver v1;
        uint8_t *old, *cur;
        struct proto_msg m;
        struct node_ent *e = changed_after_basis("sess_nf", len, &old, &cur, &v1);
        struct proto_ver none = { 0, 0 };
        uint64_t sent, full;

        cr_assert_eq(send_one(0, 5, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(node_pending(node, 0), 0);
        /* The peer's copy was not the basis after all. */
        cr_assert_eq(ack(0, "sess_nf", PROTO_ST_NEED_FULL, PROTO_KIND_FILE, &none), NODE_ACK_DONE);
        cr_assert_eq(node_pending(node, 0), 1, "sent again");
        sent = st->bytes_sent;
        full = st->bytes_full;
        cr_assert_eq(send_one(0, 6, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.ver.hash, e->ver.hash);
        cr_assert_eq(m.data_len, len);
        cr_assert_arr_eq(m.data, cur, len);
        cr_assert_eq(st->bytes_sent - sent, wr.len);
        cr_assert_eq(st->bytes_full - full, st->bytes_sent - sent);
        free(old);
        free(cur);
}

/* Two deltas for one file in flight; the first comes back NEED_FULL, then
 * the second BUSY (a BUSY assumes the peer still holds the basis): the
 * NEED_FULL said it does not, so the resend is still the whole file. */
Test(send, need_full_is_not_undone_by_a_later_busy) {
        const size_t len = 8192;
        struct proto_ver v1, none = { 0, 0 };
        uint8_t *old, *cur;
        struct proto_msg m;
        struct node_ent *e = changed_after_basis("sess_nfb", len, &old, &cur, &v1);

        cr_assert_eq(send_one(0, 5, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        node_end_turn(node);   /* the sending turn ends */
        memcpy(cur + 10, "AGAIN", 5);
        write_at("sess_nfb", cur, len, ago_ns(40, 444));
        check("sess_nfb");
        cr_assert_eq(send_one(0, 6, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(ack(0, "sess_nfb", PROTO_ST_NEED_FULL, PROTO_KIND_FILE, &none), NODE_ACK_DONE);
        cr_assert_eq(ack(0, "sess_nfb", PROTO_ST_BUSY, PROTO_KIND_FILE, &none), NODE_ACK_DONE);
        cr_assert_gt(node_pending(node, 0), 0);
        run_for(60);   /* whichever of dirty or the busy delay holds it */
        cr_assert_eq(send_one(0, 7, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.ver.hash, e->ver.hash);
        cr_assert_arr_eq(m.data, cur, len);
        free(old);
        free(cur);
}

/* The peer was busy on a DELTA: nothing changed there, so the retry (after
 * a short delay) is still a delta against the same basis. */
Test(send, after_busy_the_retry_is_still_a_delta) {
        const size_t len = 8192;
        struct proto_ver v1, none = { 0, 0 };
        uint8_t *old, *cur;
        struct proto_msg m;

        (void)changed_after_basis("sess_busy", len, &old, &cur, &v1);
        cr_assert_eq(send_one(0, 5, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(ack(0, "sess_busy", PROTO_ST_BUSY, PROTO_KIND_FILE, &none), NODE_ACK_DONE);
        cr_assert_eq(node_pending(node, 0), 1, "delayed, not dropped");
        cr_assert_eq(send_one(0, 6, &m), 0, "not before the delay");
        run_for(60);
        cr_assert_eq(send_one(0, 7, &m), 1);
        cr_assert_eq(m.type, PROTO_DELTA, "%s", proto_type_name(m.type));
        cr_assert_eq(m.basis_hash, v1.hash);
        free(old);
        free(cur);
}

Test(send, a_logout_is_a_delete_with_the_tombstones_kind_and_version) {
        const struct node_stats *st = node_stats(node, 0);
        uint64_t before = loop_realtime_ns(), sent, full;
        struct proto_msg m;
        struct node_ent *e = held_by_b("sess_out", "x|i:1;", 6, ago_ns(10, 0));

        drain(1);
        rm_file("sess_out");
        check("sess_out");
        cr_assert_eq(e->kind, PROTO_KIND_DESTROY);
        sent = st->bytes_sent;
        full = st->bytes_full;
        cr_assert_eq(send_one(0, 8, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE, "%s", proto_type_name(m.type));
        cr_assert_str_eq(m.name, "sess_out");
        cr_assert_eq(m.kind, PROTO_KIND_DESTROY);
        cr_assert_eq(m.ver.mtime_ns, e->ver.mtime_ns);
        cr_assert_eq(m.ver.hash, e->ver.hash);
        cr_assert_geq(m.ver.mtime_ns, before, "a destroy carries the time of the delete");
        cr_assert_eq(st->bytes_sent - sent, wr.len);
        cr_assert_eq(st->bytes_full - full, wr.len);
        /* Acknowledged: marking it again sends nothing. */
        cr_assert_eq(ack(0, "sess_out", PROTO_ST_OK, m.kind, &m.ver), NODE_ACK_DONE);
        node_mark_dirty(node, e, 0);
        cr_assert_eq(send_one(0, 9, &m), 0);
        /* Peer c gets the same DELETE. */
        cr_assert_eq(send_one(1, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE);
        cr_assert_eq(m.kind, PROTO_KIND_DESTROY);
}

Test(send, an_expiry_is_a_delete_carrying_the_files_version) {
        struct proto_msg m;
        struct node_ent *e;
        struct proto_ver v;

        /* Older than session_lifetime (1440 s): PHP's GC removed it. */
        write_at("sess_gc", "y|i:2;", 6, ago_ns(2000, 77));
        e = check("sess_gc");
        v = e->ver;
        drain(0);
        drain(1);
        rm_file("sess_gc");
        check("sess_gc");
        cr_assert_eq(e->kind, PROTO_KIND_EXPIRE);
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE, "%s", proto_type_name(m.type));
        cr_assert_eq(m.kind, PROTO_KIND_EXPIRE);
        cr_assert_eq(m.ver.mtime_ns, v.mtime_ns);
        cr_assert_eq(m.ver.hash, v.hash);
}

/* node_make_durable failed this turn: no DELETE leaves before its
 * tombstone is on disk; the entry is kept for a retry. */
Test(send, a_delete_waits_for_its_tombstone_to_be_durable) {
        struct proto_msg m;
        struct node_ent *e;

        write_at("sess_d", "z", 1, ago_ns(5, 0));
        check("sess_d");
        drain(0);
        drain(1);
        rm_file("sess_d");
        e = check("sess_d");
        cr_assert_eq(e->kind, PROTO_KIND_DESTROY);
        node->durable = false;
        cr_assert_lt(send_one(0, 1, &m), 0);
        cr_assert_eq(node_pending(node, 0), 1, "kept, retried later");
        cr_assert(e->peer[0].delayed);
        node->durable = true;
        cr_assert_eq(send_one(1, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE);
}

/* Check, then PHP rewrites the file, and the send runs before any check
 * saw that: the sender must neither send the new bytes under the old
 * version nor record the new version itself. */
Test(send, sending_never_redetects_a_rewrite) {
        static const char v1[] = "user|s:2:\"v1\";", v2[] = "user|s:2:\"v2\";extra|b:1;";
        uint64_t t1 = ago_ns(60, 1), t2 = ago_ns(30, 2);
        struct proto_msg m;
        struct node_ent *e;
        struct proto_ver old;

        write_at("sess_rw", v1, strlen(v1), t1);
        e = check("sess_rw");   /* the turn ended: no cached bytes */
        old = e->ver;
        drain(1);
        write_at("sess_rw", v2, strlen(v2), t2);   /* no check runs */
        cr_assert_eq(send_one(0, 1, &m), 0, "the old version is not on disk any more: nothing now");
        cr_assert_eq(e->kind, PROTO_KIND_FILE);
        cr_assert_eq(e->ver.mtime_ns, old.mtime_ns, "the entry's version is unchanged");
        cr_assert_eq(e->ver.hash, old.hash);
        cr_assert_eq(node_pending(node, 1), 0, "sending detected nothing for the other peer");
        cr_assert_gt(node_pending(node, 0), 0, "peer b keeps its place");
        /* The next turn's check records the new version for both peers. */
        node_run_checks(node);
        cr_assert_eq(e->ver.mtime_ns, t2);
        cr_assert_eq(e->ver.hash, sess_hash(v2, strlen(v2)));
        cr_assert_eq(node_pending(node, 1), 1);
        cr_assert_eq(node_pending(node, 0), 1);
        node_end_turn(node);
        cr_assert_eq(send_one(1, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE);
        cr_assert_eq(m.ver.mtime_ns, t2);
        cr_assert_arr_eq(m.data, v2, strlen(v2));
        run_for(60);   /* peer b's short delay */
        cr_assert_eq(send_one(0, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE);
        cr_assert_eq(m.ver.mtime_ns, t2);
        cr_assert_eq(m.data_len, strlen(v2));
        cr_assert_arr_eq(m.data, v2, strlen(v2));
}

/* The same within the turn that read the file: the turn's bytes are the
 * recorded version's, so whatever goes out is consistent (old bytes under
 * the old version), never the new bytes. */
Test(send, a_rewrite_within_the_reading_turn_never_mixes_versions) {
        static const char v1[] = "a|s:3:\"one\";", v2[] = "a|s:3:\"two\";b|i:2;";
        uint64_t t1 = ago_ns(60, 0), t2 = ago_ns(30, 0);
        struct proto_msg m;
        struct node_ent *e;

        write_at("sess_rw2", v1, strlen(v1), t1);
        node_check(node, "sess_rw2");
        node_run_checks(node);
        e = node_get(node, "sess_rw2");
        drain(1);
        write_at("sess_rw2", v2, strlen(v2), t2);
        if (send_one(0, 1, &m) == 1) {
                cr_assert_eq(m.type, PROTO_FILE);
                cr_assert_eq(m.ver.mtime_ns, t1);
                cr_assert_eq(m.ver.hash, sess_hash(m.data, m.data_len), "bytes and version agree");
                cr_assert_arr_eq(m.data, v1, strlen(v1));
        }
        cr_assert_eq(e->ver.mtime_ns, t1, "sending recorded nothing");
        node_end_turn(node);
        node_check(node, "sess_rw2");   /* the rewrite's inotify event */
        node_run_checks(node);
        cr_assert_eq(e->ver.mtime_ns, t2);
        cr_assert_eq(node_pending(node, 1), 1);
        cr_assert_eq(node_pending(node, 0), 1);
}

Test(send, sending_never_turns_an_unlink_into_a_delete) {
        struct proto_msg m;
        struct node_ent *e;

        write_at("sess_ul", "q|i:9;", 6, ago_ns(20, 0));
        e = check("sess_ul");
        drain(1);
        rm_file("sess_ul");   /* no check runs */
        cr_assert_eq(send_one(0, 1, &m), 0, "no DELETE (and no FILE) in this call");
        cr_assert_eq(e->kind, PROTO_KIND_FILE, "still the file as checked");
        cr_assert_eq(node_n_tombs(node), 0);
        cr_assert_eq(node_pending(node, 1), 0);
        node_run_checks(node);
        cr_assert(ver_is_tomb(e->kind), "the next check makes the tombstone");
        cr_assert_eq(node_n_tombs(node), 1);
        cr_assert_eq(node_n_files(node), 0);
        cr_assert_eq(node_pending(node, 1), 1);
        cr_assert_eq(node_pending(node, 0), 1);
        cr_assert_eq(send_one(1, 1, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE, "%s", proto_type_name(m.type));
        run_for(60);
        cr_assert_eq(send_one(0, 2, &m), 1);
        cr_assert_eq(m.type, PROTO_DELETE, "%s", proto_type_name(m.type));
}

Test(send, a_file_locked_at_send_time_waits) {
        static const char content[] = "locked|b:1;";
        char path[256];
        struct proto_msg m;
        struct node_ent *e;
        struct proto_ver v;
        int fd;

        write_at("sess_lk", content, strlen(content), ago_ns(15, 0));
        e = check("sess_lk");   /* turn ended: no turn cache */
        v = e->ver;
        path_of(path, "sess_lk");
        fd = open(path, O_RDWR);
        cr_assert_geq(fd, 0);
        cr_assert_eq(flock(fd, LOCK_EX), 0);   /* a PHP request */
        cr_assert_eq(send_one(0, 1, &m), 0, "nothing sent while locked");
        cr_assert_gt(node_pending(node, 0), 0, "kept");
        cr_assert_eq(e->ver.mtime_ns, v.mtime_ns);
        cr_assert_eq(node_stats(node, 0)->bytes_sent, 0);
        cr_assert_eq(close(fd), 0);
        run_for(60);
        cr_assert_eq(send_one(0, 2, &m), 1, "sent once the lock is gone");
        cr_assert_eq(m.type, PROTO_FILE);
        cr_assert_arr_eq(m.data, content, strlen(content));
}

/* Held long at send time: read again after 5 ms, doubling to 320 ms, so
 * 700 ms of a held lock cost a handful of reads, not 140. */
Test(send, a_long_lock_at_send_time_backs_off) {
        static const char content[] = "locked|b:2;";
        char path[256];
        struct proto_msg m;
        struct node_ent *e;
        int fd, sent = 0;

        write_at("sess_lk2", content, strlen(content), ago_ns(15, 0));
        e = check("sess_lk2");
        path_of(path, "sess_lk2");
        fd = open(path, O_RDWR);
        cr_assert_geq(fd, 0);
        cr_assert_eq(flock(fd, LOCK_EX), 0);
        for (int i = 0; i < 70; i++) {
                cr_assert_eq(send_one(0, 1, &m), 0);
                run_for(10);
        }
        cr_assert_geq(e->peer[0].lock_tries, 3, "read again (%u)", e->peer[0].lock_tries);
        cr_assert_leq(e->peer[0].lock_tries, 10, "with backoff (%u reads in 700 ms)", e->peer[0].lock_tries);
        cr_assert_eq(close(fd), 0);
        for (int i = 0; i < 50 && !sent; i++) {
                run_for(10);
                sent = send_one(0, 2, &m);
        }
        cr_assert_eq(sent, 1, "sent within the 320 ms cap once the lock is gone");
        cr_assert_eq(e->peer[0].lock_tries, 0);
}

/* Bytes read this turn are shared by every peer: a lock taken after the
 * read does not hold the other peers back. */
Test(send, the_turns_read_serves_every_peer_even_if_locked_since) {
        static const char content[] = "shared|b:1;";
        char path[256];
        struct proto_msg m;
        int fd;

        write_at("sess_sh", content, strlen(content), ago_ns(15, 0));
        node_check(node, "sess_sh");
        node_run_checks(node);   /* read now, kept for this turn */
        path_of(path, "sess_sh");
        fd = open(path, O_RDWR);
        cr_assert_geq(fd, 0);
        cr_assert_eq(flock(fd, LOCK_EX), 0);
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_arr_eq(m.data, content, strlen(content));
        cr_assert_eq(send_one(1, 1, &m), 1);
        cr_assert_arr_eq(m.data, content, strlen(content));
        close(fd);
}

Test(send, ack_ok_is_done_and_counts_applied) {
        const struct node_stats *st = node_stats(node, 0);
        struct proto_msg m;
        struct node_ent *e;

        put_file("sess_ok", "o|i:1;", 0);
        e = check("sess_ok");
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(st->applied, 0);
        cr_assert_eq(ack(0, "sess_ok", PROTO_ST_OK, PROTO_KIND_FILE, &e->ver), NODE_ACK_DONE);
        cr_assert_eq(st->applied, 1);
        cr_assert_eq(st->conflicts, 0);
        cr_assert_eq(st->errors, 0);
        cr_assert_eq(node_pending(node, 0), 0);
        cr_assert_eq(e->peer[0].has_kind, PROTO_KIND_FILE);
        cr_assert_eq(e->peer[0].has.hash, e->ver.hash);
}

Test(send, ack_stale_counts_a_conflict_and_is_not_resent) {
        const struct node_stats *st = node_stats(node, 0);
        struct proto_ver theirs = { ago_ns(1, 0), 12345 };
        struct proto_msg m;
        struct node_ent *e;

        write_at("sess_st", "s|i:1;", 6, ago_ns(9, 0));
        e = check("sess_st");
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(ack(0, "sess_st", PROTO_ST_STALE, PROTO_KIND_FILE, &theirs), NODE_ACK_STALE);
        cr_assert_eq(st->conflicts, 1);
        cr_assert_eq(st->applied, 0);
        cr_assert_eq(node_pending(node, 0), 0, "ours lost: not sent again");
        cr_assert_eq(e->peer[0].has.mtime_ns, theirs.mtime_ns, "what the peer holds is remembered");
        cr_assert_eq(e->peer[0].has.hash, theirs.hash);
}

Test(send, ack_retry_is_retried_later) {
        const struct node_stats *st = node_stats(node, 0);
        struct proto_ver none = { 0, 0 };
        struct proto_msg m;

        write_at("sess_re", "r|i:1;", 6, ago_ns(9, 0));
        check("sess_re");
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(ack(0, "sess_re", PROTO_ST_RETRY, PROTO_KIND_FILE, &none), NODE_ACK_RETRY);
        cr_assert_eq(st->applied, 0);
        cr_assert_eq(st->rejected, 0);
        cr_assert_eq(node_pending(node, 0), 1, "kept for a retry");
        cr_assert_eq(send_one(0, 2, &m), 0, "not at once (a full disk needs time)");
        run_for(1300);   /* the retry delay is a second */
        cr_assert_eq(send_one(0, 3, &m), 1);
        cr_assert_eq(m.type, PROTO_FILE, "%s", proto_type_name(m.type));
}

Test(send, ack_reject_is_refused_for_good) {
        const struct node_stats *st = node_stats(node, 0);
        struct proto_ver none = { 0, 0 };
        struct proto_msg m;

        write_at("sess_rj", "j|i:1;", 6, ago_ns(9, 0));
        check("sess_rj");
        cr_assert_eq(send_one(0, 1, &m), 1);
        cr_assert_eq(ack(0, "sess_rj", PROTO_ST_REJECT, PROTO_KIND_FILE, &none), NODE_ACK_REFUSED);
        cr_assert_eq(st->rejected, 1);
        cr_assert_eq(st->applied, 0);
        cr_assert_eq(node_pending(node, 0), 0, "not sent again");
}

Test(send, ack_for_an_unknown_name) {
        const struct node_stats *st = node_stats(node, 0);
        struct proto_ver v = { ago_ns(1, 0), 1 };

        cr_assert_eq(ack(0, "sess_nosuch", PROTO_ST_OK, PROTO_KIND_FILE, &v), NODE_ACK_UNKNOWN);
        cr_assert_eq(ack(0, "sess_nosuch", PROTO_ST_REJECT, PROTO_KIND_FILE, &v), NODE_ACK_UNKNOWN);
        cr_assert_eq(st->applied, 0);
        cr_assert_eq(st->rejected, 0);
        cr_assert_null(node_get(node, "sess_nosuch"), "no entry made for it");
}
