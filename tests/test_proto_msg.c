/* Tests for proto/msg: frame split, encode and decode of every message type.
 *
 * Every decode goes through dec(), which copies the frame to a heap block of
 * exactly its size (ASan then sees a read past the end), checks that a failed
 * decode left *ret untouched, and that a successful one agrees with
 * proto_frame_len. Malformed frames are built by hand with the raw_*()
 * helpers, since the encoders only write what is valid.
 *
 * The session prefix ("sess_") is not checked here: proto only guarantees a
 * name is one safe path component; lib/sess does the rest. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ver.h"
#include "proto/msg.h"

#define SEQ 0x81020304u         /* high bit set: no sign slip in the seq */

static const uint8_t file_data[] = { 'a', '|', 's', ':', '1', ':', '"', 'x', '"', ';', 0, 0xff, 0x80 };
static const char status_text[] = "peers: 2 up\nqueue: 0\n";

static const struct proto_inv_ent inv_ents[] = {
        { "sess_a", PROTO_KIND_FILE, { UINT64_C(0x17f0000000000001), UINT64_C(0x8000000000000000) } },
        { "sess_b", PROTO_KIND_DESTROY, { 2, 3 } },
        { "sess_c", PROTO_KIND_EXPIRE, { UINT64_MAX, UINT64_MAX } },
};
#define N_INV (sizeof(inv_ents) / sizeof(inv_ents[0]))

/* A message of the given type with every field it carries set to a
 * distinctive value and every other field zero, as the decoder leaves it. */
static void sample(uint8_t type, struct proto_msg *m) {
        const struct proto_ver ver = { UINT64_C(0x17f1e2d3c4b5a697), UINT64_C(0xdeadbeefcafef00d) };

        memset(m, 0, sizeof(*m));
        m->type = type;
        m->seq = SEQ;
        switch (type) {
        case PROTO_HELLO:
                m->version = PROTO_VERSION;
                m->clock_ns = UINT64_C(0x8877665544332211);
                strcpy(m->node, "web-1.example_A");
                strcpy(m->to, "web2");
                break;
        case PROTO_FILE:
                strcpy(m->name, "sess_abc123");
                m->ver = ver;
                m->data = file_data;
                m->data_len = m->size = sizeof(file_data);
                break;
        case PROTO_DELTA:
                strcpy(m->name, "sess_delta");
                m->ver = ver;
                m->basis_hash = UINT64_C(0xf00dfacef00dface);
                m->size = 4242;
                m->data = file_data;
                m->data_len = sizeof(file_data);
                break;
        case PROTO_TOUCH:
                strcpy(m->name, "sess_t");
                m->ver = ver;
                break;
        case PROTO_DELETE:
                strcpy(m->name, "sess_gone");
                m->kind = PROTO_KIND_DESTROY;
                m->ver = ver;
                break;
        case PROTO_ACK:
                m->ack_seq = 0xfedcba98u;
                m->status = PROTO_ST_BUSY;
                strcpy(m->name, "sess_acked");
                m->kind = PROTO_KIND_EXPIRE;
                m->ver = ver;
                break;
        case PROTO_INV:
                m->count = N_INV;
                break;
        case PROTO_INV_END:
                m->count = 0xfffffffeu;
                break;
        case PROTO_PING:
                m->clock_ns = UINT64_C(0x1122334455667788);
                break;
        case PROTO_PONG:
                m->echo_ns = UINT64_C(0x1122334455667788);
                m->clock_ns = UINT64_C(0x99aabbccddeeff00);
                break;
        case PROTO_RELAY:
                strcpy(m->node, "web2");
                break;
        case PROTO_STATUS_REQ:
                m->kind = PROTO_STATUS_JSON;
                break;
        case PROTO_STATUS:
        case PROTO_ERROR:
                m->data = (const uint8_t *)status_text;
                m->data_len = sizeof(status_text) - 1;
                break;
        }
}

/* Append m's frame to wr; INV goes through the incremental encoder. */
static int encode(struct proto_wr *wr, const struct proto_msg *m) {
        size_t start;

        if (m->type != PROTO_INV)
                return proto_msg_encode(wr, m);
        start = proto_inv_begin(wr, m->seq);
        for (size_t i = 0; i < N_INV; i++)
                proto_inv_add(wr, inv_ents[i].name, inv_ents[i].kind, &inv_ents[i].ver);
        return proto_inv_end(wr, start, m->count);
}

static void encode_sample(struct proto_wr *wr, uint8_t type) {
        struct proto_msg m;

        sample(type, &m);
        proto_wr_init(wr);
        cr_assert_eq(encode(wr, &m), 0, "encode %s", proto_type_name(type));
}

/* Decode a heap copy of p[0..n). *keep receives the copy (m->data points
 * into it) or, with keep NULL, it is freed at once. */
static int dec(const void *p, size_t n, struct proto_msg *m, uint8_t **keep) {
        uint8_t *b = malloc(n ? n : 1);
        struct proto_msg before;
        size_t flen = 0;
        int r;

        cr_assert_not_null(b);
        if (n)
                memcpy(b, p, n);
        memset(m, 0x5a, sizeof(*m));
        before = *m;
        r = proto_msg_decode(b, n, m);
        if (r < 0) {
                cr_assert_eq(memcmp(m, &before, sizeof(*m)), 0, "failed decode (%d) wrote *ret", r);
        } else {
                cr_assert_eq(r, 0);
                cr_assert_eq(proto_frame_len(b, n, &flen), 0, "decoded but not a frame");
                cr_assert_eq(flen, n);
        }
        if (keep)
                *keep = b;
        else
                free(b);
        return r;
}

static void assert_inv_entries(const struct proto_msg *m) {
        struct proto_inv_ent e;
        struct proto_rd rd;
        uint32_t left = m->count;

        proto_rd_init(&rd, m->data, m->data_len);
        for (size_t i = 0; i < N_INV; i++) {
                cr_assert_eq(proto_inv_next(&rd, &left, &e), 1, "entry %zu", i);
                cr_assert_str_eq(e.name, inv_ents[i].name);
                cr_assert_eq(e.kind, inv_ents[i].kind);
                cr_assert_eq(e.ver.mtime_ns, inv_ents[i].ver.mtime_ns);
                cr_assert_eq(e.ver.hash, inv_ents[i].ver.hash);
        }
        cr_assert_eq(left, 0);
        cr_assert_eq(proto_inv_next(&rd, &left, &e), 0);
        cr_assert_eq(proto_inv_next(&rd, &left, &e), 0, "end is sticky");
}

/* Every field, including those the type does not carry (they must be 0). */
static void assert_same(const struct proto_msg *a, const struct proto_msg *b) {
        const char *t = proto_type_name(a->type);

        cr_assert_eq(a->type, b->type, "%s: type", t);
        cr_assert_eq(a->seq, b->seq, "%s: seq", t);
        cr_assert_eq(a->version, b->version, "%s: version", t);
        cr_assert_eq(a->clock_ns, b->clock_ns, "%s: clock_ns", t);
        cr_assert_eq(a->echo_ns, b->echo_ns, "%s: echo_ns", t);
        cr_assert_str_eq(a->node, b->node, "%s: node", t);
        cr_assert_str_eq(a->to, b->to, "%s: to", t);
        cr_assert_str_eq(a->name, b->name, "%s: name", t);
        cr_assert_eq(a->ver.mtime_ns, b->ver.mtime_ns, "%s: ver.mtime_ns", t);
        cr_assert_eq(a->ver.hash, b->ver.hash, "%s: ver.hash", t);
        cr_assert_eq(a->kind, b->kind, "%s: kind", t);
        cr_assert_eq(a->basis_hash, b->basis_hash, "%s: basis_hash", t);
        cr_assert_eq(a->size, b->size, "%s: size", t);
        cr_assert_eq(a->ack_seq, b->ack_seq, "%s: ack_seq", t);
        cr_assert_eq(a->status, b->status, "%s: status", t);
        cr_assert_eq(a->count, b->count, "%s: count", t);
        if (a->type == PROTO_INV)
                return;         /* data is the entries: see assert_inv_entries */
        cr_assert_eq(a->data_len, b->data_len, "%s: data_len", t);
        if (a->data_len)
                cr_assert_eq(memcmp(a->data, b->data, a->data_len), 0, "%s: data", t);
}

/* Hand-built frames: header, fields, then the length fixed up. */
static size_t raw_begin(struct proto_wr *wr, uint8_t type) {
        size_t start = wr->len;

        proto_put_u32(wr, 0);
        proto_put_u8(wr, type);
        proto_put_u32(wr, SEQ);
        return start;
}

static void raw_end(struct proto_wr *wr, size_t start) {
        proto_poke_u32(wr, start, (uint32_t)(wr->len - start - 4));
        cr_assert_eq(proto_wr_error(wr), 0);
}

static void raw_name(struct proto_wr *wr, const void *p, size_t n) {
        cr_assert_leq(n, 255);
        proto_put_u8(wr, (uint8_t)n);
        proto_put_bytes(wr, p, n);
}

static void raw_ver(struct proto_wr *wr) {
        proto_put_u64(wr, 1);
        proto_put_u64(wr, 2);
}

static void raw_hello(struct proto_wr *wr, uint32_t magic, uint16_t version, const char *node, const char *to,
                      size_t extra) {
        size_t start = raw_begin(wr, PROTO_HELLO);

        proto_put_u32(wr, magic);
        proto_put_u16(wr, version);
        proto_put_u64(wr, 77);
        raw_name(wr, node, strlen(node));
        raw_name(wr, to, strlen(to));
        for (size_t i = 0; i < extra; i++)
                proto_put_u8(wr, (uint8_t)i);
        raw_end(wr, start);
}

/* A valid frame of a name-carrying type, with this name (n bytes, may hold
 * NUL). For INV the name is that of the single entry. */
static void raw_named(struct proto_wr *wr, uint8_t type, const void *name, size_t n) {
        size_t start = raw_begin(wr, type);

        switch (type) {
        case PROTO_FILE:
                raw_name(wr, name, n);
                raw_ver(wr);
                proto_put_blob(wr, "x", 1);
                break;
        case PROTO_DELTA:
                raw_name(wr, name, n);
                raw_ver(wr);
                proto_put_u64(wr, 3);
                proto_put_u64(wr, 1);
                proto_put_blob(wr, "d", 1);
                break;
        case PROTO_TOUCH:
                raw_name(wr, name, n);
                raw_ver(wr);
                break;
        case PROTO_DELETE:
                raw_name(wr, name, n);
                proto_put_u8(wr, PROTO_KIND_EXPIRE);
                raw_ver(wr);
                break;
        case PROTO_ACK:
                proto_put_u32(wr, 5);
                proto_put_u8(wr, PROTO_ST_OK);
                raw_name(wr, name, n);
                proto_put_u8(wr, PROTO_KIND_FILE);
                raw_ver(wr);
                break;
        case PROTO_INV:
                proto_put_u32(wr, 1);
                raw_name(wr, name, n);
                proto_put_u8(wr, PROTO_KIND_FILE);
                raw_ver(wr);
                break;
        default:
                cr_assert_fail("raw_named: type %u", type);
        }
        raw_end(wr, start);
}

static const uint8_t named_types[] = { PROTO_FILE, PROTO_DELTA, PROTO_TOUCH, PROTO_DELETE, PROTO_ACK, PROTO_INV };
#define N_NAMED (sizeof(named_types) / sizeof(named_types[0]))

static int dec_named(uint8_t type, const void *name, size_t n, struct proto_msg *m) {
        struct proto_wr wr;
        int r;

        proto_wr_init(&wr);
        raw_named(&wr, type, name, n);
        r = dec(wr.buf, wr.len, m, NULL);
        proto_wr_free(&wr);
        return r;
}

/* ---- roundtrip ----------------------------------------------------------- */

Test(proto_msg, roundtrip_every_type) {
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_; t++) {
                struct proto_msg want, got;
                struct proto_wr wr;
                uint8_t *keep;
                size_t flen = 0;

                sample(t, &want);
                encode_sample(&wr, t);
                cr_assert_eq(proto_frame_len(wr.buf, wr.len, &flen), 0, "%s", proto_type_name(t));
                cr_assert_eq(flen, wr.len, "%s: frame_len %zu, encoded %zu", proto_type_name(t), flen, wr.len);
                /* Header: u32 len (type..end) | u8 type | u32 seq, big-endian. */
                cr_assert_eq((size_t)wr.buf[0] << 24 | (size_t)wr.buf[1] << 16 | (size_t)wr.buf[2] << 8 | wr.buf[3],
                             wr.len - 4);
                cr_assert_eq(wr.buf[4], t);
                cr_assert_eq(wr.buf[5], 0x81);
                cr_assert_eq(wr.buf[8], 0x04);
                cr_assert_eq(dec(wr.buf, flen, &got, &keep), 0, "decode %s", proto_type_name(t));
                assert_same(&want, &got);
                if (t == PROTO_INV)
                        assert_inv_entries(&got);
                free(keep);
                proto_wr_free(&wr);
        }
}

/* Frames follow each other in one stream buffer. */
Test(proto_msg, back_to_back) {
        struct proto_wr wr;
        size_t off = 0;

        proto_wr_init(&wr);
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_; t++) {
                struct proto_msg m;

                sample(t, &m);
                cr_assert_eq(encode(&wr, &m), 0);
        }
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_; t++) {
                struct proto_msg m;
                size_t flen;

                cr_assert_eq(proto_frame_len(wr.buf + off, wr.len - off, &flen), 0);
                cr_assert_eq(dec(wr.buf + off, flen, &m, NULL), 0);
                cr_assert_eq(m.type, t);
                off += flen;
        }
        cr_assert_eq(off, wr.len);
        proto_wr_free(&wr);
}

/* The byte layout is frozen: a change here is a protocol change. */
Test(proto_msg, golden_bytes) {
        static const uint8_t ping[] = { 0, 0, 0, 13, PROTO_PING, 0x81, 2, 3, 4,
                                        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 };
        static const uint8_t hello[] = { 0, 0, 0, 40, PROTO_HELLO, 0x81, 2, 3, 4,
                                         'S', 'S', 'Y', 'N', 0, 1,
                                         0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                                         15, 'w', 'e', 'b', '-', '1', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '_', 'A',
                                         4, 'w', 'e', 'b', '2' };
        static const uint8_t del[] = { 0, 0, 0, 32, PROTO_DELETE, 0x81, 2, 3, 4,
                                       9, 's', 'e', 's', 's', '_', 'g', 'o', 'n', 'e', 1,
                                       0x17, 0xf1, 0xe2, 0xd3, 0xc4, 0xb5, 0xa6, 0x97,
                                       0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xf0, 0x0d };
        static const struct { uint8_t type; const uint8_t *b; size_t n; } g[] = {
                { PROTO_PING, ping, sizeof(ping) },
                { PROTO_HELLO, hello, sizeof(hello) },
                { PROTO_DELETE, del, sizeof(del) },
        };

        for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
                struct proto_wr wr;

                encode_sample(&wr, g[i].type);
                cr_assert_eq(wr.len, g[i].n, "%s: %zu bytes", proto_type_name(g[i].type), wr.len);
                cr_assert_eq(memcmp(wr.buf, g[i].b, g[i].n), 0, "%s layout", proto_type_name(g[i].type));
                proto_wr_free(&wr);
        }
}

/* ---- truncation and trailing bytes -------------------------------------- */

Test(proto_msg, truncated_every_prefix) {
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_; t++) {
                const char *tn = proto_type_name(t);
                struct proto_wr wr;

                encode_sample(&wr, t);
                for (size_t k = 0; k < wr.len; k++) {
                        uint8_t *b = malloc(wr.len);
                        struct proto_msg m;
                        size_t flen = 12345;

                        cr_assert_not_null(b);
                        memcpy(b, wr.buf, wr.len);
                        /* Still arriving: read more. */
                        cr_assert_eq(proto_frame_len(b, k, &flen), -EAGAIN, "%s: %zu of %zu", tn, k, wr.len);
                        cr_assert_eq(flen, 12345, "%s: *ret_len written on -EAGAIN", tn);
                        /* The prefix as it stands: length field disagrees. */
                        cr_assert_eq(dec(b, k, &m, NULL), -EBADMSG, "%s: raw prefix %zu", tn, k);
                        /* A peer that lies: length field says the prefix is whole. */
                        if (k >= 4)
                                proto_poke_u32(&(struct proto_wr){ .buf = b, .len = k }, 0, (uint32_t)(k - 4));
                        cr_assert_eq(dec(b, k, &m, NULL), -EBADMSG, "%s: patched prefix %zu", tn, k);
                        free(b);
                }
                proto_wr_free(&wr);
        }
}

/* One extra byte, length field adjusted: only HELLO accepts it, because a
 * newer protocol version may append fields to HELLO. */
Test(proto_msg, trailing_byte) {
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_; t++) {
                struct proto_msg want, got;
                struct proto_wr wr;
                uint8_t *keep;
                int r;

                sample(t, &want);
                encode_sample(&wr, t);
                proto_put_u8(&wr, 0);
                proto_poke_u32(&wr, 0, (uint32_t)(wr.len - 4));
                r = dec(wr.buf, wr.len, &got, &keep);
                if (t == PROTO_HELLO) {
                        cr_assert_eq(r, 0, "HELLO must ignore appended fields");
                        assert_same(&want, &got);
                } else {
                        cr_assert_eq(r, -EBADMSG, "%s: trailing byte gave %d", proto_type_name(t), r);
                }
                free(keep);
                proto_wr_free(&wr);
        }
}

Test(proto_msg, hello_from_newer_version) {
        struct proto_wr wr;
        struct proto_msg m;

        proto_wr_init(&wr);
        raw_hello(&wr, PROTO_MAGIC, PROTO_VERSION + 1, "new-node", "old-node", 40);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), 0);
        cr_assert_eq(m.version, PROTO_VERSION + 1);
        cr_assert_eq(m.clock_ns, 77);
        cr_assert_str_eq(m.node, "new-node");
        cr_assert_str_eq(m.to, "old-node");
        proto_wr_free(&wr);
}

/* ---- frame length --------------------------------------------------------- */

Test(proto_msg, frame_over_max_before_bytes_arrive) {
        static const uint32_t bad[] = { PROTO_FRAME_MAX + 1, 0x7fffffff, 0x80000000u, 0xffffffffu };
        uint8_t b[PROTO_HDR_LEN] = { 0, 0, 0, 0, PROTO_PING };
        size_t flen = 12345;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct proto_msg m;

                proto_poke_u32(&(struct proto_wr){ .buf = b, .len = sizeof(b) }, 0, bad[i]);
                cr_assert_eq(proto_frame_len(b, 4, &flen), -EMSGSIZE, "len %#x", bad[i]);
                cr_assert_eq(proto_frame_len(b, sizeof(b), &flen), -EMSGSIZE);
                cr_assert_eq(dec(b, sizeof(b), &m, NULL), -EMSGSIZE);
                cr_assert_eq(flen, 12345);
        }
        /* Exactly the cap is allowed: wait for it. Under 4 bytes, always wait. */
        proto_poke_u32(&(struct proto_wr){ .buf = b, .len = sizeof(b) }, 0, PROTO_FRAME_MAX);
        cr_assert_eq(proto_frame_len(b, 4, &flen), -EAGAIN);
        cr_assert_eq(proto_frame_len(b, sizeof(b), &flen), -EAGAIN);
        b[0] = 0xff;
        for (size_t k = 0; k < 4; k++)
                cr_assert_eq(proto_frame_len(b, k, &flen), -EAGAIN);
}

Test(proto_msg, frame_under_header) {
        uint8_t b[16] = { 0 };
        size_t flen = 12345;

        for (uint32_t n = 0; n < PROTO_HDR_LEN - 4; n++) {
                struct proto_msg m;

                b[3] = (uint8_t)n;
                cr_assert_eq(proto_frame_len(b, sizeof(b), &flen), -EBADMSG, "len field %u", n);
                cr_assert_eq(proto_frame_len(b, 4, &flen), -EBADMSG, "len field %u", n);
                cr_assert_eq(dec(b, 4 + n, &m, NULL), -EBADMSG);
        }
        cr_assert_eq(flen, 12345);
}

/* ---- type, magic, version ------------------------------------------------- */

Test(proto_msg, unknown_type) {
        static const uint8_t bad[] = { 0, PROTO_TYPE_MAX_ + 1, 200, 255 };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint8_t b[PROTO_HDR_LEN + 8] = { 0, 0, 0, 13, bad[i] };
                struct proto_msg m;
                struct proto_wr wr;

                /* The length field is checked before the type. */
                cr_assert_eq(dec(b, PROTO_HDR_LEN, &m, NULL), -EBADMSG);
                b[3] = 5;
                cr_assert_eq(dec(b, PROTO_HDR_LEN, &m, NULL), -EPROTO, "type %u", bad[i]);
                b[3] = 13;
                cr_assert_eq(dec(b, sizeof(b), &m, NULL), -EPROTO, "type %u with payload", bad[i]);
                cr_assert_str_eq(proto_type_name(bad[i]), "UNKNOWN");

                /* The encoder refuses it too and leaves wr as it was. */
                proto_wr_init(&wr);
                proto_put_u8(&wr, 0xee);
                sample(PROTO_PING, &m);
                m.type = bad[i];
                cr_assert_eq(proto_msg_encode(&wr, &m), -EPROTO);
                cr_assert_eq(wr.len, 1);
                cr_assert_eq(proto_wr_error(&wr), 0);
                proto_wr_free(&wr);
        }
}

Test(proto_msg, hello_magic_and_version) {
        static const uint32_t magics[] = { 0, 0x5353594du, 0x4e595353u, 0xffffffffu };
        struct proto_wr wr;
        struct proto_msg m;

        for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
                proto_wr_init(&wr);
                raw_hello(&wr, magics[i], PROTO_VERSION, "a", "b", 0);
                cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EPROTO, "magic %#x", magics[i]);
                proto_wr_free(&wr);
        }
        proto_wr_init(&wr);
        raw_hello(&wr, PROTO_MAGIC, 0, "a", "b", 0);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EPROTO, "version 0");
        proto_wr_reset(&wr);
        raw_hello(&wr, PROTO_MAGIC, 0xffff, "a", "b", 0);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), 0, "a newer version is the caller's to negotiate");
        cr_assert_eq(m.version, 0xffff);
        /* version 0 in the struct means "ours" to the encoder. */
        proto_wr_reset(&wr);
        sample(PROTO_HELLO, &m);
        m.version = 0;
        cr_assert_eq(proto_msg_encode(&wr, &m), 0);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), 0);
        cr_assert_eq(m.version, PROTO_VERSION);
        proto_wr_free(&wr);
}

/* ---- node names ------------------------------------------------------------ */

Test(proto_msg, hello_bad_nodes) {
        char n64[65], n65[66];
        const struct { const char *node; int want; } c[] = {
                { "", -EBADMSG }, { "a b", -EBADMSG }, { n65, -EMSGSIZE }, { "a/b", -EBADMSG },
                { "../x", -EBADMSG }, { "h\xc3\xa9", -EBADMSG }, { "x:1", -EBADMSG }, { "tab\t", -EBADMSG },
                { n64, 0 }, { "a", 0 }, { "A.b_c-9", 0 },
        };

        memset(n64, 'n', 64);
        n64[64] = 0;
        memset(n65, 'n', 65);
        n65[65] = 0;
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                for (int which = 0; which < 2; which++) {
                        struct proto_wr wr;
                        struct proto_msg m;

                        proto_wr_init(&wr);
                        raw_hello(&wr, PROTO_MAGIC, PROTO_VERSION, which ? "ok" : c[i].node, which ? c[i].node : "ok", 0);
                        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), c[i].want, "%s \"%s\"", which ? "to" : "node",
                                     c[i].node);
                        if (c[i].want == 0)
                                cr_assert_str_eq(which ? m.to : m.node, c[i].node);
                        proto_wr_free(&wr);
                }
        }
        /* Embedded NUL: never cut short to "ab". */
        {
                static const uint8_t nul[] = { 3, 'a', 0, 'b' };
                struct proto_wr wr;
                struct proto_msg m;
                size_t start;

                proto_wr_init(&wr);
                start = raw_begin(&wr, PROTO_HELLO);
                proto_put_u32(&wr, PROTO_MAGIC);
                proto_put_u16(&wr, PROTO_VERSION);
                proto_put_u64(&wr, 0);
                proto_put_bytes(&wr, nul, sizeof(nul));
                proto_put_str(&wr, "ok");
                raw_end(&wr, start);
                cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EBADMSG);
                proto_wr_free(&wr);
        }
}

/* RELAY carries the --from peer, which may be empty. */
Test(proto_msg, serve_nodes) {
        const struct { const char *node; int want; } c[] = {
                { "", 0 }, { "web2", 0 }, { "a b", -EBADMSG }, { "a/b", -EBADMSG },
        };

        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
                struct proto_wr wr;
                struct proto_msg m;
                size_t start;

                proto_wr_init(&wr);
                start = raw_begin(&wr, PROTO_RELAY);
                proto_put_str(&wr, c[i].node);
                raw_end(&wr, start);
                cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), c[i].want, "\"%s\"", c[i].node);
                if (c[i].want == 0)
                        cr_assert_str_eq(m.node, c[i].node);
                proto_wr_free(&wr);
        }
}

/* ---- file names ------------------------------------------------------------ */

Test(proto_msg, bad_names_every_named_type) {
        static const struct { const char *p; size_t n; } bad[] = {
                { "..", 2 }, { ".", 1 }, { "a/b", 3 }, { "/etc/passwd", 11 }, { "../x", 4 }, { "x/", 2 },
                { "/", 1 }, { "sess_a\0.php", 11 }, { "\0", 1 }, { "a\0", 2 }, { "", 0 },
        };

        for (size_t t = 0; t < N_NAMED; t++)
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        struct proto_msg m;

                        cr_assert_eq(dec_named(named_types[t], bad[i].p, bad[i].n, &m), -EBADMSG, "%s: name #%zu",
                                     proto_type_name(named_types[t]), i);
                }
}

/* Any single component is fine on the wire, including odd ones. */
Test(proto_msg, good_names_every_named_type) {
        char n255[256];
        const char *good[] = { "sess_abc", "...", "..a", ".a", "a.", "a b", "\xff\x01", "-", n255 };

        memset(n255, 'z', 255);
        n255[255] = 0;
        for (size_t t = 0; t < N_NAMED; t++)
                for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                        struct proto_inv_ent e;
                        struct proto_msg m;
                        struct proto_wr wr;
                        struct proto_rd rd;
                        uint8_t *keep;
                        uint32_t left;

                        proto_wr_init(&wr);
                        raw_named(&wr, named_types[t], good[i], strlen(good[i]));
                        cr_assert_eq(dec(wr.buf, wr.len, &m, &keep), 0, "%s: name #%zu",
                                     proto_type_name(named_types[t]), i);
                        if (named_types[t] != PROTO_INV) {
                                cr_assert_str_eq(m.name, good[i]);
                        } else {
                                left = m.count;
                                proto_rd_init(&rd, m.data, m.data_len);
                                cr_assert_eq(proto_inv_next(&rd, &left, &e), 1);
                                cr_assert_str_eq(e.name, good[i]);
                                cr_assert_eq(proto_inv_next(&rd, &left, &e), 0);
                        }
                        free(keep);
                        proto_wr_free(&wr);
                }
}

Test(proto_msg, name_255_ok_256_impossible) {
        char n[258];
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;

        /* 255 through the encoder. */
        memset(n, 'q', 255);
        n[255] = 0;
        sample(PROTO_TOUCH, &m);
        strcpy(m.name, n);
        proto_wr_init(&wr);
        cr_assert_eq(proto_msg_encode(&wr, &m), 0);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), 0);
        cr_assert_eq(strlen(m.name), 255);
        cr_assert(proto_name_ok(n, 255));

        /* 256 cannot be said: the writer refuses it ... */
        proto_wr_reset(&wr);
        memset(n, 'q', 256);
        n[256] = 0;
        proto_put_str(&wr, n);
        cr_assert_eq(proto_wr_error(&wr), -EMSGSIZE);
        cr_assert(!proto_name_ok(n, 256));

        /* ... and on the wire the u8 length tops out at 255, so a 256th name
         * byte is just a trailing byte. */
        proto_wr_reset(&wr);
        start = raw_begin(&wr, PROTO_TOUCH);
        proto_put_u8(&wr, 255);
        proto_put_bytes(&wr, n, 256);
        raw_ver(&wr);
        raw_end(&wr, start);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EBADMSG);
        proto_wr_free(&wr);
}

/* ---- kinds, statuses, caps --------------------------------------------------- */

static int dec_delete_kind(uint8_t kind) {
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;
        int r;

        proto_wr_init(&wr);
        start = raw_begin(&wr, PROTO_DELETE);
        proto_put_str(&wr, "sess_x");
        proto_put_u8(&wr, kind);
        raw_ver(&wr);
        raw_end(&wr, start);
        r = dec(wr.buf, wr.len, &m, NULL);
        if (r == 0)
                cr_assert_eq(m.kind, kind);
        proto_wr_free(&wr);
        return r;
}

Test(proto_msg, delete_kind) {
        cr_assert_eq(dec_delete_kind(PROTO_KIND_DESTROY), 0);
        cr_assert_eq(dec_delete_kind(PROTO_KIND_EXPIRE), 0);
        cr_assert_eq(dec_delete_kind(PROTO_KIND_FILE), -EBADMSG, "a tombstone of kind FILE");
        cr_assert_eq(dec_delete_kind(3), -EBADMSG);
        cr_assert_eq(dec_delete_kind(255), -EBADMSG);
}

static int dec_ack(uint8_t status, uint8_t kind) {
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;
        int r;

        proto_wr_init(&wr);
        start = raw_begin(&wr, PROTO_ACK);
        proto_put_u32(&wr, 1);
        proto_put_u8(&wr, status);
        proto_put_str(&wr, "sess_x");
        proto_put_u8(&wr, kind);
        raw_ver(&wr);
        raw_end(&wr, start);
        r = dec(wr.buf, wr.len, &m, NULL);
        if (r == 0) {
                cr_assert_eq(m.status, status);
                cr_assert_eq(m.kind, kind);
        }
        proto_wr_free(&wr);
        return r;
}

Test(proto_msg, ack_status_and_kind) {
        for (unsigned s = 0; s <= PROTO_ST_MAX_; s++) {
                cr_assert_eq(dec_ack((uint8_t)s, PROTO_KIND_FILE), 0, "status %u", s);
                cr_assert_str_neq(proto_status_name((uint8_t)s), "unknown");
        }
        cr_assert_eq(dec_ack(PROTO_ST_MAX_ + 1, PROTO_KIND_FILE), -EBADMSG);
        cr_assert_eq(dec_ack(255, PROTO_KIND_FILE), -EBADMSG);
        cr_assert_str_eq(proto_status_name(PROTO_ST_MAX_ + 1), "unknown");
        cr_assert_str_eq(proto_status_name(255), "unknown");
        for (unsigned k = 0; k <= PROTO_KIND_EXPIRE; k++)
                cr_assert_eq(dec_ack(PROTO_ST_OK, (uint8_t)k), 0, "kind %u", k);
        cr_assert_eq(dec_ack(PROTO_ST_OK, 3), -EBADMSG);
        cr_assert_eq(dec_ack(PROTO_ST_OK, 255), -EBADMSG);
}

Test(proto_msg, data_caps) {
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;

        /* FILE, STATUS, ERROR: a blob over PROTO_DATA_MAX is refused on its
         * length alone, before the bytes are there. */
        static const uint8_t blob_types[] = { PROTO_STATUS, PROTO_ERROR };
        proto_wr_init(&wr);
        start = raw_begin(&wr, PROTO_FILE);
        proto_put_str(&wr, "sess_x");
        raw_ver(&wr);
        proto_put_u32(&wr, PROTO_DATA_MAX + 1);
        proto_put_bytes(&wr, "abc", 3);
        raw_end(&wr, start);
        cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EMSGSIZE);
        for (size_t i = 0; i < sizeof(blob_types); i++) {
                proto_wr_reset(&wr);
                start = raw_begin(&wr, blob_types[i]);
                proto_put_u32(&wr, 0xffffffffu);
                raw_end(&wr, start);
                cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), -EMSGSIZE);
        }
        /* DELTA: the announced result size is capped too. */
        for (int over = 0; over < 2; over++) {
                proto_wr_reset(&wr);
                start = raw_begin(&wr, PROTO_DELTA);
                proto_put_str(&wr, "sess_x");
                raw_ver(&wr);
                proto_put_u64(&wr, 0);
                proto_put_u64(&wr, over ? (uint64_t)PROTO_DATA_MAX + 1 : PROTO_DATA_MAX);
                proto_put_blob(&wr, "d", 1);
                raw_end(&wr, start);
                cr_assert_eq(dec(wr.buf, wr.len, &m, NULL), over ? -EMSGSIZE : 0);
        }
        /* The encoder refuses it without writing anything. */
        proto_wr_reset(&wr);
        sample(PROTO_FILE, &m);
        m.data_len = PROTO_DATA_MAX + 1;
        cr_assert_eq(proto_msg_encode(&wr, &m), -EMSGSIZE);
        cr_assert_eq(wr.len, 0);
        proto_wr_free(&wr);
}

Test(proto_msg, file_of_max_size) {
        uint8_t *data = malloc(PROTO_DATA_MAX);
        struct proto_msg want, got;
        struct proto_wr wr;
        uint8_t *keep;
        size_t flen;

        cr_assert_not_null(data);
        for (size_t i = 0; i < PROTO_DATA_MAX; i++)
                data[i] = (uint8_t)(i * 131 + (i >> 13));
        sample(PROTO_FILE, &want);
        want.data = data;
        want.data_len = want.size = PROTO_DATA_MAX;
        proto_wr_init(&wr);
        cr_assert_eq(proto_msg_encode(&wr, &want), 0);
        cr_assert_leq(wr.len - 4, PROTO_FRAME_MAX);
        cr_assert_eq(proto_frame_len(wr.buf, wr.len, &flen), 0);
        cr_assert_eq(dec(wr.buf, flen, &got, &keep), 0);
        assert_same(&want, &got);
        free(keep);
        proto_wr_free(&wr);
        free(data);
}

/* ---- INV ----------------------------------------------------------------------- */

static int dec_inv(uint32_t count, size_t n_ents, size_t extra, uint8_t kind) {
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;
        int r;

        proto_wr_init(&wr);
        start = raw_begin(&wr, PROTO_INV);
        proto_put_u32(&wr, count);
        for (size_t i = 0; i < n_ents; i++) {
                char name[32];

                snprintf(name, sizeof(name), "sess_%zu", i);
                proto_put_str(&wr, name);
                proto_put_u8(&wr, kind);
                proto_put_u64(&wr, i);
                proto_put_u64(&wr, ~(uint64_t)i);
        }
        for (size_t i = 0; i < extra; i++)
                proto_put_u8(&wr, 0);
        raw_end(&wr, start);
        r = dec(wr.buf, wr.len, &m, NULL);
        if (r == 0)
                cr_assert_eq(m.count, count);
        proto_wr_free(&wr);
        return r;
}

Test(proto_msg, inv_count) {
        cr_assert_eq(dec_inv(0, 0, 0, PROTO_KIND_FILE), 0);
        cr_assert_eq(dec_inv(2, 2, 0, PROTO_KIND_FILE), 0);
        cr_assert_eq(dec_inv(PROTO_INV_MAX, PROTO_INV_MAX, 0, PROTO_KIND_FILE), 0);
        cr_assert_eq(dec_inv(PROTO_INV_MAX + 1, 0, 0, PROTO_KIND_FILE), -EMSGSIZE, "cap before entries");
        cr_assert_eq(dec_inv(PROTO_INV_MAX + 1, PROTO_INV_MAX + 1, 0, PROTO_KIND_FILE), -EMSGSIZE);
        cr_assert_eq(dec_inv(0xffffffffu, 1, 0, PROTO_KIND_FILE), -EMSGSIZE);
        /* count disagrees with the entries */
        cr_assert_eq(dec_inv(2, 1, 0, PROTO_KIND_FILE), -EBADMSG, "fewer entries than count");
        cr_assert_eq(dec_inv(1, 2, 0, PROTO_KIND_FILE), -EBADMSG, "more entries than count");
        cr_assert_eq(dec_inv(0, 1, 0, PROTO_KIND_FILE), -EBADMSG);
        cr_assert_eq(dec_inv(1, 1, 1, PROTO_KIND_FILE), -EBADMSG, "half an entry after the last");
        cr_assert_eq(dec_inv(PROTO_INV_MAX, PROTO_INV_MAX - 1, 0, PROTO_KIND_FILE), -EBADMSG);
        /* entry kinds */
        cr_assert_eq(dec_inv(1, 1, 0, PROTO_KIND_DESTROY), 0);
        cr_assert_eq(dec_inv(1, 1, 0, PROTO_KIND_EXPIRE), 0);
        cr_assert_eq(dec_inv(1, 1, 0, 3), -EBADMSG);
        cr_assert_eq(dec_inv(1, 1, 0, 255), -EBADMSG);
}

Test(proto_msg, inv_encoder) {
        const struct proto_ver v = { 1, 2 };
        struct proto_wr wr;
        struct proto_msg m;
        uint8_t *keep;
        size_t start;

        /* Over the cap: the frame is withdrawn. */
        proto_wr_init(&wr);
        proto_put_u8(&wr, 0xee);
        start = proto_inv_begin(&wr, 1);
        cr_assert_eq(start, 1);
        proto_inv_add(&wr, "sess_a", PROTO_KIND_FILE, &v);
        cr_assert_eq(proto_inv_end(&wr, start, PROTO_INV_MAX + 1), -EMSGSIZE);
        cr_assert_eq(wr.len, 1);

        /* Empty INV and a second frame after the first one. */
        proto_wr_reset(&wr);
        start = proto_inv_begin(&wr, 7);
        cr_assert_eq(proto_inv_end(&wr, start, 0), 0);
        start = proto_inv_begin(&wr, 8);
        proto_inv_add(&wr, "sess_z", PROTO_KIND_EXPIRE, &v);
        cr_assert_eq(proto_inv_end(&wr, start, 1), 0);
        cr_assert_eq(dec(wr.buf, start, &m, NULL), 0);
        cr_assert_eq(m.seq, 7);
        cr_assert_eq(m.count, 0);
        cr_assert_eq(m.data_len, 0);
        cr_assert_eq(dec(wr.buf + start, wr.len - start, &m, &keep), 0);
        cr_assert_eq(m.seq, 8);
        cr_assert_eq(m.count, 1);
        free(keep);
        proto_wr_free(&wr);
}

/* proto_inv_next is a cursor getter: on failure the cursor and the count
 * left stay put, and *ret is not half-written. */
Test(proto_msg, inv_next_failure_leaves_state) {
        static const uint8_t ents[] = {
                6, 's', 'e', 's', 's', '_', 'a', 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
                6, 's', 'e', 's', 's', '_', 'b', 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
        };
        uint8_t *b = malloc(sizeof(ents));
        struct proto_inv_ent e, before;
        struct proto_rd rd;
        uint32_t left = 2;

        cr_assert_not_null(b);
        memcpy(b, ents, sizeof(ents));
        proto_rd_init(&rd, b, sizeof(ents));
        cr_assert_eq(proto_inv_next(&rd, &left, &e), 1);
        cr_assert_str_eq(e.name, "sess_a");
        cr_assert_eq(e.ver.hash, 2);
        memset(&e, 0x5a, sizeof(e));
        before = e;
        cr_assert_eq(proto_inv_next(&rd, &left, &e), -EBADMSG, "kind 9");
        cr_assert_eq(rd.off, 24);
        cr_assert_eq(left, 1);
        cr_assert_eq(memcmp(&e, &before, sizeof(e)), 0, "*ret written on failure");
        /* Truncated anywhere in the second entry. */
        for (size_t k = 24; k < sizeof(ents); k++) {
                rd.len = k;
                b[31] = PROTO_KIND_FILE;
                cr_assert_eq(proto_inv_next(&rd, &left, &e), -EBADMSG, "%zu bytes", k);
                cr_assert_eq(rd.off, 24);
                cr_assert_eq(left, 1);
                cr_assert_eq(memcmp(&e, &before, sizeof(e)), 0, "*ret written on failure");
        }
        free(b);
}

/* ---- tables --------------------------------------------------------------------- */

Test(proto_msg, ver_cmp_order) {
        const struct proto_ver v[] = {
                { 0, 0 }, { 0, 1 }, { 0, UINT64_MAX }, { 1, 0 }, { 1, 5 },
                { UINT64_C(0x8000000000000000), 0 }, { UINT64_MAX, 0 }, { UINT64_MAX, UINT64_MAX },
        };
        const size_t n = sizeof(v) / sizeof(v[0]);

        /* v[] is sorted: the mtime decides, the hash only breaks ties. */
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                        int c = ver_cmp(&v[i], &v[j]);
                        int want = i < j ? -1 : i > j ? 1 : 0;

                        cr_assert_eq(c < 0 ? -1 : c > 0 ? 1 : 0, want, "v[%zu] vs v[%zu]: %d", i, j, c);
                }
}

Test(proto_msg, name_ok_table) {
        char n[257];
        const struct { const char *p; size_t n; bool ok; } c[] = {
                { "sess_x", 6, true }, { "a", 1, true }, { "...", 3, true }, { ".x", 2, true }, { "..x", 3, true },
                { "x..", 3, true }, { "a b", 3, true }, { "\xff", 1, true }, { "\\", 1, true },
                { "", 0, false }, { ".", 1, false }, { "..", 2, false }, { "a/b", 3, false }, { "/", 1, false },
                { "/etc/passwd", 11, false }, { "a\0b", 3, false }, { "\0", 1, false }, { "ab\0", 3, false },
        };

        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
                cr_assert_eq(proto_name_ok(c[i].p, c[i].n), c[i].ok, "case %zu", i);
        memset(n, 'm', sizeof(n));
        cr_assert(proto_name_ok(n, 255));
        cr_assert(!proto_name_ok(n, 256));
        cr_assert(!proto_name_ok(n, SIZE_MAX));
        /* The length is what counts, not a terminator: "." within "..x". */
        cr_assert(!proto_name_ok("..x", 1));
        cr_assert(!proto_name_ok("..x", 2));
}

Test(proto_msg, node_ok_table) {
        char n64[65], n65[66];
        const struct { const char *s; bool ok; } c[] = {
                { "a", true }, { "web-1", true }, { "Web_2.lan", true }, { "0", true }, { "-", true },
                { "", false }, { "a b", false }, { "a/b", false }, { "a:b", false }, { "a@b", false },
                { "\xc3\xa9", false }, { "a\n", false }, { "a\\b", false }, { "*", false },
        };

        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
                cr_assert_eq(proto_node_ok(c[i].s), c[i].ok, "\"%s\"", c[i].s);
        memset(n64, 'n', 64);
        n64[64] = 0;
        memset(n65, 'n', 65);
        n65[65] = 0;
        cr_assert(proto_node_ok(n64));
        cr_assert(!proto_node_ok(n65));
}

Test(proto_msg, type_names) {
        cr_assert_str_eq(proto_type_name(PROTO_HELLO), "HELLO");
        cr_assert_str_eq(proto_type_name(PROTO_ERROR), "ERROR");
        for (unsigned t = 1; t <= PROTO_TYPE_MAX_; t++)
                cr_assert_str_neq(proto_type_name((uint8_t)t), "UNKNOWN", "type %u", t);
        cr_assert_str_eq(proto_type_name(0), "UNKNOWN");
        cr_assert_str_eq(proto_type_name(PROTO_TYPE_MAX_ + 1), "UNKNOWN");
        cr_assert_str_eq(proto_type_name(255), "UNKNOWN");
}

/* An encoder that hits a writer already in error reports that error. */
Test(proto_msg, encode_on_failed_writer) {
        char s256[257];
        struct proto_wr wr;
        struct proto_msg m;

        memset(s256, 's', 256);
        s256[256] = 0;
        proto_wr_init(&wr);
        proto_put_str(&wr, s256);
        sample(PROTO_PING, &m);
        cr_assert_eq(proto_msg_encode(&wr, &m), -EMSGSIZE);
        cr_assert_eq(wr.len, 0);
        proto_wr_free(&wr);
}
