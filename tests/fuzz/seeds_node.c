/* Seed corpus and dictionary for fuzz_node: connections that do each thing
 * the receiving daemon does once (apply a new file, overwrite, refuse as
 * stale, a delta against a fixture's bytes, a touch, each delete, each file
 * the receiver must not write through, the handshake's refusals, status),
 * and longer stories, written with proto/'s encoders and lib/delta against
 * the world of node_fixture.h.
 *
 *   seeds_node DIR DICT    seeds into DIR, the dictionary into the file DICT
 *
 * Run by tests/fuzz/run. Each seed is fuzz_node's input: a flags byte,
 * then the stream (see fuzz_node.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/delta.h"
#include "lib/sess.h"
#include "proto/msg.h"
#include "tests/fuzz/node_fixture.h"

#define F_RAW 0x08u
#define F_SHUT 0x10u
#define F_PEER_C 0x20u
#define F_OTHER 0x40u
#define F_OUT 0x80u

static const char *dir;
static struct proto_wr wr;
static uint32_t seq = 1;
static int failed;

static const char *fx(size_t i) {
        return fz_fixtures[i].name;
}

static uint64_t fx_hash(size_t i) {
        return sess_hash(fz_fixtures[i].content, strlen(fz_fixtures[i].content));
}

static void put(const struct proto_msg *m) {
        if (proto_msg_encode(&wr, m) < 0)
                failed = 1;
}

static void begin(uint8_t flags) {
        proto_wr_reset(&wr);
        proto_put_u8(&wr, flags);
        seq = 1;
}

static void save(const char *name) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/seed_%s", dir, name);
        f = fopen(path, "we");
        if (!f || proto_wr_error(&wr) || fwrite(wr.buf, 1, wr.len, f) != wr.len) {
                fprintf(stderr, "seeds_node: \"%s\": %s\n", path, strerror(errno));
                failed = 1;
        }
        if (f && fclose(f) != 0)
                failed = 1;
}

static void file3(const char *name, const void *content, size_t len, uint64_t mtime_ns, uint64_t hash) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_FILE;
        m.seq = seq++;
        snprintf(m.name, sizeof(m.name), "%s", name);
        m.data = content;
        m.data_len = m.size = len;
        m.ver.mtime_ns = mtime_ns;
        m.ver.hash = hash;
        put(&m);
}

static void file(const char *name, const char *content, unsigned s) {
        file3(name, content, strlen(content), FZ_NS(s), sess_hash(content, strlen(content)));
}

static void delta(const char *name, const char *basis, const char *to, unsigned s, uint64_t basis_hash) {
        struct delta_sig *sig = NULL;
        uint8_t *d = NULL;
        size_t dlen = 0;
        struct proto_msg m;

        if (delta_sig_new(basis, strlen(basis), &sig) < 0 || delta_make(sig, to, strlen(to), &d, &dlen) < 0) {
                failed = 1;
                return;
        }
        memset(&m, 0, sizeof(m));
        m.type = PROTO_DELTA;
        m.seq = seq++;
        snprintf(m.name, sizeof(m.name), "%s", name);
        m.basis_hash = basis_hash;
        m.size = strlen(to);
        m.data = d;
        m.data_len = dlen;
        m.ver.mtime_ns = FZ_NS(s);
        m.ver.hash = sess_hash(to, strlen(to));
        put(&m);
        free(d);
        delta_sig_free(sig);
}

static void touch(const char *name, unsigned s, uint64_t hash) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_TOUCH;
        m.seq = seq++;
        snprintf(m.name, sizeof(m.name), "%s", name);
        m.ver.mtime_ns = FZ_NS(s);
        m.ver.hash = hash;
        put(&m);
}

static void del(const char *name, uint8_t kind, uint64_t mtime_ns, uint64_t hash) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_DELETE;
        m.seq = seq++;
        snprintf(m.name, sizeof(m.name), "%s", name);
        m.kind = kind;
        m.ver.mtime_ns = mtime_ns;
        m.ver.hash = hash;
        put(&m);
}

static void simple(uint8_t type) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = type;
        m.seq = seq++;
        m.clock_ns = FZ_NS(1000);
        if (type == PROTO_ERROR) {
                m.data = (const uint8_t *)"going away";
                m.data_len = 10;
        }
        put(&m);
}

static void error_text(const char *text) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_ERROR;
        m.data = (const uint8_t *)text;
        m.data_len = strlen(text);
        put(&m);
}

static void relay(const char *from) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_RELAY;
        snprintf(m.node, sizeof(m.node), "%s", from);
        put(&m);
}

static void hello(const char *from, const char *to) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_HELLO;
        m.version = PROTO_VERSION;
        m.clock_ns = FZ_NS(1000);
        snprintf(m.node, sizeof(m.node), "%s", from);
        snprintf(m.to, sizeof(m.to), "%s", to);
        put(&m);
}

static void status_req(uint8_t format) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_STATUS_REQ;
        m.kind = format;
        put(&m);
}

/* F_OUT: the peer's answers on our own connection to it. At start the
 * node sends FILE 0 (fixture 1), FILE 1 (fixture 0), DELETE 2 (the logout,
 * fixture 6) to a peer whose inventory is empty. */
static void ack(uint32_t ack_seq, size_t fixture, uint8_t status, uint8_t kind, uint64_t mtime_ns, uint64_t hash) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_ACK;
        m.seq = seq++;
        m.ack_seq = ack_seq;
        snprintf(m.name, sizeof(m.name), "%s", fx(fixture));
        m.status = status;
        m.kind = kind;
        m.ver.mtime_ns = mtime_ns;
        m.ver.hash = hash;
        put(&m);
}

static void inv_end(uint32_t count) {
        struct proto_msg m;

        memset(&m, 0, sizeof(m));
        m.type = PROTO_INV_END;
        m.count = count;
        put(&m);
}

static void inv(void) {
        const struct proto_ver newer = { FZ_NS(150), 99 }, same = { FZ_NS(fz_fixtures[1].mtime_s), fx_hash(1) };
        const struct proto_ver tomb = { FZ_NS(350), 0 }, other = { FZ_NS(120), 5 };
        size_t start = proto_inv_begin(&wr, seq++);

        proto_inv_add(&wr, fx(0), PROTO_KIND_FILE, &newer);     /* it holds a newer one: wanted here */
        proto_inv_add(&wr, fx(1), PROTO_KIND_FILE, &same);      /* the same: nothing to send */
        proto_inv_add(&wr, fx(6), PROTO_KIND_DESTROY, &tomb);   /* a newer logout */
        proto_inv_add(&wr, "sess_fzpeeronly01", PROTO_KIND_FILE, &other);   /* only there */
        proto_inv_add(&wr, fx(2), PROTO_KIND_EXPIRE, &other);
        if (proto_inv_end(&wr, start, 5) < 0)
                failed = 1;
}

/* A life: created, changed by a delta, touched, logged out, a stale copy
 * refused, and the fixtures' own changes in between. */
static void story(void) {
        static const char *const v1 = "user|s:4:\"carl\";n|i:1;";
        static const char *const v2 = "user|s:4:\"carl\";n|i:2;cart|a:1:{i:0;i:7;}";

        file("sess_fzstory0001", v1, 500);
        delta("sess_fzstory0001", v1, v2, 510, sess_hash(v1, strlen(v1)));
        touch("sess_fzstory0001", 520, sess_hash(v2, strlen(v2)));
        simple(PROTO_PING);
        delta(fx(1), fz_fixtures[1].content, "user|s:3:\"bob\";", 250, fx_hash(1));
        del("sess_fzstory0001", PROTO_KIND_DESTROY, FZ_NS(530), 0);
        file("sess_fzstory0001", v2, 525);   /* older than the logout: refused */
        simple(PROTO_INV_REQ);
        del(fx(0), PROTO_KIND_EXPIRE, FZ_NS(fz_fixtures[0].mtime_s), fx_hash(0));
        file(fx(6), "user|s:4:\"back\";", 310);   /* newer than the fixture's logout */
}

static void dict(const char *path) {
        FILE *f = fopen(path, "we");

        if (!f) {
                failed = 1;
                return;
        }
        /* Fixture names as the u8-length strings frames carry. */
        for (size_t i = 0; i < FZ_N_FIXTURES; i++) {
                fprintf(f, "name%zu=\"\\x%02zx%s\"\n", i, strlen(fx(i)), fx(i));
                if (fz_fixtures[i].content) {
                        uint64_t h = fx_hash(i);

                        fprintf(f, "hash%zu=\"", i);
                        for (int b = 7; b >= 0; b--)
                                fprintf(f, "\\x%02x", (unsigned)(h >> (8 * b)) & 0xff);
                        fprintf(f, "\"\n");
                }
                {
                        uint64_t t = FZ_NS(fz_fixtures[i].mtime_s);

                        fprintf(f, "mtime%zu=\"", i);
                        for (int b = 7; b >= 0; b--)
                                fprintf(f, "\\x%02x", (unsigned)(t >> (8 * b)) & 0xff);
                        fprintf(f, "\"\n");
                }
        }
        fprintf(f, "prefix=\"sess_\"\nbad_prefix=\"\\x05sess.\"\nnodeb=\"\\x01b\"\nnodec=\"\\x01c\"\nnodea=\"\\x01a\"\n"
                   "magic=\"SSYN\"\nmax_file=\"\\x00\\x00\\x10\\x00\"\nmax_file1=\"\\x00\\x00\\x10\\x01\"\n"
                   "u64_max=\"\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\"\nzero64=\"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\"\n");
        if (fclose(f) != 0)
                failed = 1;
}

int main(int argc, char **argv) {
        static char big[FZ_MAX_FILE + 2];

        if (argc != 3) {
                fprintf(stderr, "usage: seeds_node DIR DICT\n");
                return 2;
        }
        dir = argv[1];
        proto_wr_init(&wr);

        begin(0), file("sess_fznew000001", "x|i:1;", 500), save("file_new");
        begin(F_PEER_C), file("sess_fznew000001", "x|i:1;", 500), save("file_new_from_c");
        begin(0), file(fx(0), "user|s:5:\"alice\";cart|a:1:{i:0;i:3;}", 150), save("file_newer");
        begin(0), file(fx(0), "user|s:3:\"old\";", 50), save("file_stale");
        begin(0), file(fx(0), fz_fixtures[0].content, fz_fixtures[0].mtime_s), save("file_same");
        begin(0), file3("sess_fznew000002", "abc", 3, FZ_NS(500), 42), save("file_bad_hash");
        memset(big, 'x', FZ_MAX_FILE + 1);
        begin(0), file("sess_fzbig0000001", big, 500), save("file_over_max");
        begin(0), file(fx(6), "user|s:4:\"late\";", 250), save("file_under_logout");
        begin(0), file(fx(6), "user|s:4:\"back\";", 310), save("file_over_logout");
        begin(0), file("sess_fznew000003", "f|i:9;", 4000000000u), save("file_future");
        begin(0), file3("sess_fznew000004", "o", 1, 1000000000ull, sess_hash("o", 1)), save("file_forgettable");
        begin(0), file("nosess_fz000001", "n|i:1;", 500), file("sess_fz has space", "n|i:1;", 500),
                file("sess_", "n|i:1;", 500), save("file_bad_names");
        begin(0);
        for (size_t i = 2; i <= 5; i++)
                file(fx(i), "evil|s:1:\"x\";", 900);
        save("file_not_phps");

        begin(0), delta(fx(1), fz_fixtures[1].content, "user|s:3:\"bob\";history|a:0:{}", 250, fx_hash(1)),
                save("delta");
        begin(0), delta(fx(1), fz_fixtures[0].content, "user|s:3:\"bob\";", 250, fx_hash(0)), save("delta_wrong_basis");
        begin(0), delta("sess_fznew000005", "a", "ab", 500, sess_hash("a", 1)), save("delta_no_file");
        begin(0), touch(fx(0), 160, fx_hash(0)), save("touch");
        begin(0), touch(fx(0), 160, 7), save("touch_other_hash");
        begin(0), touch("sess_fznew000006", 160, 7), save("touch_no_file");

        begin(0), del(fx(0), PROTO_KIND_DESTROY, FZ_NS(400), 0), save("delete_destroy");
        begin(0), del(fx(1), PROTO_KIND_EXPIRE, FZ_NS(fz_fixtures[1].mtime_s), fx_hash(1)), save("delete_expire");
        begin(0), del(fx(0), PROTO_KIND_DESTROY, FZ_NS(50), 0), save("delete_stale");
        begin(0);
        for (size_t i = 2; i < FZ_N_FIXTURES; i++)
                del(fx(i), PROTO_KIND_DESTROY, FZ_NS(900), 0);
        del("sess_fzunknown01", PROTO_KIND_DESTROY, FZ_NS(900), 0);
        save("delete_not_phps");

        begin(0), file(fx(7), "user|s:4:\"mine\";", 900), delta(fx(7), fz_fixtures[7].content, "u", 900, fx_hash(7)),
                touch(fx(7), 900, fx_hash(7)), del(fx(7), PROTO_KIND_DESTROY, FZ_NS(900), 0), save("locked_by_php");
        begin(F_OTHER), file("sess_fznew000010", "x|i:2;", 500), save("second_connection");
        begin(F_OTHER | F_RAW), relay("b"), hello("b", "a"), save("raw_second_connection");
        begin(0), simple(PROTO_INV_REQ), simple(PROTO_PING), save("inv_req_ping");
        begin(0), file("sess_fznew000007", "e|i:1;", 500), simple(PROTO_ERROR), save("error");
        begin(0), hello("b", "a"), save("hello_twice");
        begin(0), simple(PROTO_INV_END), save("unexpected_frame");

        begin(0), story(), save("story");
        begin(0x03), story(), save("story_in_16_byte_writes");
        begin(0x01), story(), save("story_in_4_byte_writes");
        begin(F_SHUT), story(), save("story_half_close");
        begin(0), story(), wr.len -= 3, save("story_cut_short");

        begin(F_RAW), relay("b"), hello("b", "a"), file("sess_fznew000008", "r|i:1;", 500), save("raw_handshake");
        begin(F_RAW), relay(""), hello("c", "a"), simple(PROTO_PING), save("raw_any_peer");
        begin(F_RAW), relay("c"), hello("b", "a"), save("raw_wrong_key");
        begin(F_RAW), relay(""), hello("x", "a"), save("raw_not_a_peer");
        begin(F_RAW), relay(""), hello("b", "z"), save("raw_not_us");
        begin(F_RAW), file("sess_fznew000009", "r|i:1;", 500), save("raw_no_handshake");
        begin(F_RAW), status_req(PROTO_STATUS_TEXT), save("raw_status_text");
        begin(F_RAW), status_req(PROTO_STATUS_JSON), save("raw_status_json");
        begin(F_RAW), status_req(PROTO_STATUS_READY), save("raw_status_ready");

        begin(F_OUT), inv_end(0), ack(0, 1, PROTO_ST_OK, PROTO_KIND_FILE, FZ_NS(fz_fixtures[1].mtime_s), fx_hash(1)),
                ack(1, 0, PROTO_ST_OK, PROTO_KIND_FILE, FZ_NS(fz_fixtures[0].mtime_s), fx_hash(0)),
                ack(2, 6, PROTO_ST_OK, PROTO_KIND_DESTROY, FZ_NS(fz_fixtures[6].mtime_s), 0), save("out_acks");
        begin(F_OUT | 0x02), inv_end(0), ack(0, 1, PROTO_ST_OK, PROTO_KIND_FILE, FZ_NS(fz_fixtures[1].mtime_s), fx_hash(1)),
                ack(1, 0, PROTO_ST_OK, PROTO_KIND_FILE, FZ_NS(fz_fixtures[0].mtime_s), fx_hash(0)),
                ack(2, 6, PROTO_ST_OK, PROTO_KIND_DESTROY, FZ_NS(fz_fixtures[6].mtime_s), 0), save("out_acks_in_8_byte_writes");
        begin(F_OUT), inv_end(0), ack(0, 1, PROTO_ST_NEED_FULL, PROTO_KIND_FILE, 0, 0),
                ack(1, 0, PROTO_ST_STALE, PROTO_KIND_FILE, FZ_NS(160), 77), ack(2, 6, PROTO_ST_REJECT, PROTO_KIND_FILE, 0, 0),
                ack(3, 1, PROTO_ST_RETRY, PROTO_KIND_FILE, 0, 0), save("out_acks_refused");
        begin(F_OUT), inv_end(0), ack(0, 1, PROTO_ST_BUSY, PROTO_KIND_FILE, 0, 0),
                ack(1, 0, PROTO_ST_STALE, PROTO_KIND_EXPIRE, FZ_NS(fz_fixtures[0].mtime_s), fx_hash(0)), save("out_acks_busy");
        begin(F_OUT), inv(), inv_end(5), save("out_inventory");   /* nothing to send: it holds all, or newer */
        begin(F_OUT | F_PEER_C), inv(), inv_end(5), save("out_inventory_c");
        begin(F_OUT), inv_end(0), ack(5, 1, PROTO_ST_OK, PROTO_KIND_FILE, 0, 0), save("out_ack_out_of_order");
        begin(F_OUT), ack(0, 1, PROTO_ST_OK, PROTO_KIND_FILE, 0, 0), save("out_ack_before_inventory");
        begin(F_OUT), inv_end(0), inv(), inv_end(5), simple(PROTO_PONG), simple(PROTO_PING), save("out_unexpected");
        begin(F_OUT), inv_end(0), simple(PROTO_ERROR), save("out_error");
        /* The peer's reason quotes a name: its text, shown as sent (cleaned),
         * in the log and --status; not a leak of ours (found by the fuzzer
         * as a false alarm of the check, kept so the check stays right). */
        begin(F_OUT), inv_end(0), error_text("going sess_fz1aaaaaaaa"), save("out_error_naming_a_session");
        begin(0), error_text("bye sess_fz1aaaaaaaa"), save("error_naming_a_session");
        begin(F_OUT | F_RAW), hello("x", "a"), save("out_wrong_peer");
        begin(F_OUT | F_RAW), hello("b", "z"), save("out_not_us");
        begin(F_OUT | F_RAW), hello("b", "a"), inv_end(0), save("out_hello_old_clock");

        dict(argv[2]);
        proto_wr_free(&wr);
        if (failed) {
                fprintf(stderr, "seeds_node: failed\n");
                return 1;
        }
        return 0;
}
