/* daemon/wire: splitting a connection's input buffer into frames and
 * dispatching them (wire.h). Frames are encoded by proto/ itself
 * (proto_msg_encode); the callback records what it was given, copying data
 * while the frame is still there. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/wire.h"
#include "proto/buf.h"
#include "proto/msg.h"

#define T_MTIME 1700000000123456789ull

struct got {
        uint8_t type;
        uint32_t seq;
        char name[PROTO_NAME_MAX + 1];
        uint64_t mtime_ns, hash;
        uint32_t count;
        size_t data_len;
        uint8_t data[64];
};

struct sink {
        struct got got[16];
        int n;
        int fail_at;            /* return fail_code on this call (1-based), 0: never */
        int fail_code;
};

static int on_msg(void *ctx, const struct proto_msg *m) {
        struct sink *s = ctx;
        struct got *g;

        cr_assert_lt(s->n, 16);
        g = &s->got[s->n++];
        g->type = m->type;
        g->seq = m->seq;
        strcpy(g->name, m->name);
        g->mtime_ns = m->ver.mtime_ns;
        g->hash = m->ver.hash;
        g->count = m->count;
        g->data_len = m->data_len;
        cr_assert_leq(m->data_len, sizeof(g->data));
        if (m->data_len)
                memcpy(g->data, m->data, m->data_len);
        return s->fail_at == s->n ? s->fail_code : 0;
}

static const uint8_t content[] = "a|s:5:\"hello\";";

/* Append one frame of type to wr; returns its length. */
static size_t put_frame(struct proto_wr *wr, uint8_t type, uint32_t seq) {
        struct proto_msg m;
        size_t before = wr->len;
        int r;

        memset(&m, 0, sizeof(m));
        m.type = type;
        m.seq = seq;
        switch (type) {
        case PROTO_PING:
                m.clock_ns = T_MTIME;
                break;
        case PROTO_FILE:
                strcpy(m.name, "sess_file");
                m.ver = (struct proto_ver){ T_MTIME, 0x1234 };
                m.data = content;
                m.data_len = m.size = sizeof(content) - 1;
                break;
        case PROTO_TOUCH:
                strcpy(m.name, "sess_touch");
                m.ver = (struct proto_ver){ T_MTIME + 1, 0x5678 };
                break;
        case PROTO_DELETE:
                strcpy(m.name, "sess_gone");
                m.ver = (struct proto_ver){ T_MTIME + 2, 0 };
                m.kind = PROTO_KIND_DESTROY;
                break;
        case PROTO_INV_END:
                m.count = 3;
                break;
        default:
                cr_assert_fail("put_frame: no fields for type %u", type);
        }
        r = proto_msg_encode(wr, &m);
        cr_assert_eq(r, 0, "proto_msg_encode(%s): %s", proto_type_name(type), strerror(-r));
        return wr->len - before;
}

static int dispatch(struct proto_wr *in, struct sink *s, const char **why) {
        *why = "not set";
        return wire_dispatch(in, on_msg, s, why);
}

Test(wire, several_whole_frames) {
        struct proto_wr in;
        struct sink s = { 0 };
        const struct proto_ver v = { T_MTIME + 3, 9 };
        const char *why;
        size_t start;

        proto_wr_init(&in);
        put_frame(&in, PROTO_PING, 1);
        put_frame(&in, PROTO_FILE, 2);
        put_frame(&in, PROTO_TOUCH, 3);
        put_frame(&in, PROTO_DELETE, 4);
        start = proto_inv_begin(&in, 5);
        proto_inv_add(&in, "sess_i1", PROTO_KIND_FILE, &v);
        proto_inv_add(&in, "sess_i2", PROTO_KIND_EXPIRE, &v);
        cr_assert_eq(proto_inv_end(&in, start, 2), 0);
        put_frame(&in, PROTO_INV_END, 6);

        cr_assert_eq(dispatch(&in, &s, &why), 0);
        cr_assert_null(why, "why: %s", why);
        cr_assert_eq(in.len, 0, "%zu bytes left after whole frames", in.len);
        cr_assert_eq(s.n, 6, "%d frames dispatched", s.n);
        for (int i = 0; i < 6; i++)
                cr_assert_eq(s.got[i].seq, (uint32_t)i + 1, "frame %d has seq %u: out of order", i, s.got[i].seq);
        cr_assert_eq(s.got[0].type, PROTO_PING);
        cr_assert_eq(s.got[1].type, PROTO_FILE);
        cr_assert_str_eq(s.got[1].name, "sess_file");
        cr_assert_eq(s.got[1].mtime_ns, T_MTIME);
        cr_assert_eq(s.got[1].hash, 0x1234);
        cr_assert_eq(s.got[1].data_len, sizeof(content) - 1);
        cr_assert_eq(memcmp(s.got[1].data, content, sizeof(content) - 1), 0, "FILE data differs in the callback");
        cr_assert_eq(s.got[2].type, PROTO_TOUCH);
        cr_assert_str_eq(s.got[2].name, "sess_touch");
        cr_assert_eq(s.got[3].type, PROTO_DELETE);
        cr_assert_str_eq(s.got[3].name, "sess_gone");
        cr_assert_eq(s.got[4].type, PROTO_INV);
        cr_assert_eq(s.got[4].count, 2);
        cr_assert_gt(s.got[4].data_len, 0);
        cr_assert_eq(s.got[5].type, PROTO_INV_END);
        cr_assert_eq(s.got[5].count, 3);
        proto_wr_free(&in);
}

Test(wire, empty_buffer_dispatches_nothing) {
        struct proto_wr in;
        struct sink s = { 0 };
        const char *why;

        proto_wr_init(&in);
        cr_assert_eq(dispatch(&in, &s, &why), 0);
        cr_assert_null(why);
        cr_assert_eq(s.n, 0);
        /* And an emptied one (buffer allocated, no bytes). */
        put_frame(&in, PROTO_PING, 1);
        cr_assert_eq(dispatch(&in, &s, &why), 0);
        cr_assert_eq(s.n, 1);
        cr_assert_eq(dispatch(&in, &s, &why), 0);
        cr_assert_eq(s.n, 1);
        proto_wr_free(&in);
}

/* A whole frame and the first k bytes of the next, for every k: the first
 * is dispatched, the k bytes stay, moved to the front; the rest completes
 * the frame. */
Test(wire, partial_frame_is_kept) {
        struct proto_wr one, in;
        size_t flen;

        proto_wr_init(&one);
        flen = put_frame(&one, PROTO_FILE, 7);
        for (size_t k = 0; k < flen; k++) {
                struct sink s = { 0 };
                const char *why;

                proto_wr_init(&in);
                put_frame(&in, PROTO_PING, 6);
                proto_put_bytes(&in, one.buf, k);
                cr_assert_eq(dispatch(&in, &s, &why), 0, "k=%zu", k);
                cr_assert_null(why, "k=%zu: why %s", k, why);
                cr_assert_eq(s.n, 1, "k=%zu: %d frames from one and a part", k, s.n);
                cr_assert_eq(s.got[0].type, PROTO_PING);
                cr_assert_eq(in.len, k, "k=%zu: %zu bytes kept", k, in.len);
                cr_assert(k == 0 || memcmp(in.buf, one.buf, k) == 0, "k=%zu: the kept bytes are not the frame's", k);

                /* Again, with nothing new: nothing happens. */
                cr_assert_eq(dispatch(&in, &s, &why), 0);
                cr_assert_eq(s.n, 1);
                cr_assert_eq(in.len, k);

                proto_put_bytes(&in, one.buf + k, flen - k);
                cr_assert_eq(dispatch(&in, &s, &why), 0, "k=%zu", k);
                cr_assert_eq(s.n, 2, "k=%zu: the completed frame was not dispatched", k);
                cr_assert_eq(s.got[1].type, PROTO_FILE);
                cr_assert_eq(s.got[1].seq, 7);
                cr_assert_eq(memcmp(s.got[1].data, content, sizeof(content) - 1), 0);
                cr_assert_eq(in.len, 0);
                proto_wr_free(&in);
        }
        proto_wr_free(&one);
}

/* Bad frame kinds, each put between a good frame before and one after. */
enum bad { BAD_TYPE, BAD_SHORT_LEN, BAD_HUGE_LEN, BAD_TRUNCATED_PAYLOAD, BAD_NAME };

static size_t put_bad(struct proto_wr *wr, enum bad kind) {
        size_t before = wr->len;

        switch (kind) {
        case BAD_TYPE:          /* a whole frame of an unknown type */
                proto_put_u32(wr, 5);
                proto_put_u8(wr, 0xee);
                proto_put_u32(wr, 1);
                break;
        case BAD_SHORT_LEN:     /* shorter than a header */
                proto_put_u32(wr, 2);
                proto_put_u8(wr, PROTO_PING);
                proto_put_u8(wr, 0);
                break;
        case BAD_HUGE_LEN:      /* over PROTO_FRAME_MAX: refused before it is buffered */
                proto_put_u32(wr, PROTO_FRAME_MAX + 1);
                proto_put_u8(wr, PROTO_FILE);
                break;
        case BAD_TRUNCATED_PAYLOAD:     /* a PING without its clock */
                proto_put_u32(wr, 7);
                proto_put_u8(wr, PROTO_PING);
                proto_put_u32(wr, 1);
                proto_put_u16(wr, 0);
                break;
        case BAD_NAME:          /* a TOUCH of "sess/touch": a slash in the name */
                put_frame(wr, PROTO_TOUCH, 1);
                /* The name is a u8-length string right after the header. */
                cr_assert_eq(wr->buf[before + PROTO_HDR_LEN], strlen("sess_touch"));
                cr_assert_eq(memcmp(wr->buf + before + PROTO_HDR_LEN + 1, "sess_touch", 10), 0);
                wr->buf[before + PROTO_HDR_LEN + 1 + 4] = '/';
                break;
        }
        cr_assert_eq(proto_wr_error(wr), 0);
        return wr->len - before;
}

static void check_bad(enum bad kind, int want_r) {
        struct proto_wr in, bad;
        struct sink s = { 0 };
        const char *why;
        size_t blen, after;
        int r;

        proto_wr_init(&in);
        proto_wr_init(&bad);
        blen = put_bad(&bad, kind);
        put_frame(&in, PROTO_PING, 1);
        proto_put_bytes(&in, bad.buf, blen);
        after = put_frame(&in, PROTO_TOUCH, 3);

        r = dispatch(&in, &s, &why);
        cr_assert_eq(r, want_r, "bad kind %d: returned %d (%s), want %d", kind, r, strerror(-r), want_r);
        cr_assert_not_null(why, "bad kind %d: why not set", kind);
        cr_assert_str_eq(why, wire_strerror(r));
        cr_assert_eq(s.n, 1, "bad kind %d: %d frames dispatched, only the one before it is good", kind, s.n);
        cr_assert_eq(s.got[0].type, PROTO_PING);
        cr_assert_eq(in.len, blen + after, "bad kind %d: %zu bytes left, want the bad frame and the one after (%zu)",
                     kind, in.len, blen + after);
        cr_assert_eq(memcmp(in.buf, bad.buf, blen), 0, "bad kind %d: consumed past the good frame", kind);
        proto_wr_free(&in);
        proto_wr_free(&bad);
}

Test(wire, malformed_frame_stops_with_why) {
        check_bad(BAD_TYPE, -EPROTO);
        check_bad(BAD_SHORT_LEN, -EBADMSG);
        check_bad(BAD_HUGE_LEN, -EMSGSIZE);
        check_bad(BAD_TRUNCATED_PAYLOAD, -EBADMSG);
        check_bad(BAD_NAME, -EBADMSG);
}

/* A malformed frame first: nothing is dispatched, nothing consumed. */
Test(wire, malformed_first_frame_consumes_nothing) {
        struct proto_wr in;
        struct sink s = { 0 };
        const char *why;
        size_t len;

        proto_wr_init(&in);
        put_bad(&in, BAD_TYPE);
        put_frame(&in, PROTO_PING, 2);
        len = in.len;
        cr_assert_eq(dispatch(&in, &s, &why), -EPROTO);
        cr_assert_not_null(why);
        cr_assert_eq(s.n, 0);
        cr_assert_eq(in.len, len);
        proto_wr_free(&in);
}

/* The callback's error stops dispatch and is returned; why stays NULL
 * (callers tell a protocol error from their own by it). The frame it
 * refused was handed over, so it is consumed; the next one is not. */
Test(wire, callback_error_stops_dispatch) {
        struct proto_wr in;
        struct sink s = { .fail_at = 2, .fail_code = -ECANCELED };
        const char *why;
        size_t third;

        proto_wr_init(&in);
        put_frame(&in, PROTO_PING, 1);
        put_frame(&in, PROTO_TOUCH, 2);
        third = put_frame(&in, PROTO_DELETE, 3);
        cr_assert_eq(dispatch(&in, &s, &why), -ECANCELED);
        cr_assert_null(why, "why \"%s\" for the callback's own error", why);
        cr_assert_eq(s.n, 2, "%d frames: dispatch went on after the callback failed", s.n);
        cr_assert_eq(in.len, third, "%zu bytes left, want the frame after (%zu)", in.len, third);

        /* The rest is dispatched by the next call. */
        s.fail_at = 0;
        cr_assert_eq(dispatch(&in, &s, &why), 0);
        cr_assert_eq(s.n, 3);
        cr_assert_eq(s.got[2].type, PROTO_DELETE);
        cr_assert_eq(in.len, 0);
        proto_wr_free(&in);
}

Test(wire, strerror_texts) {
        cr_assert_str_eq(wire_strerror(-EBADMSG), "malformed frame");
        cr_assert_str_eq(wire_strerror(-EMSGSIZE), "frame or field over its size limit");
        cr_assert_str_eq(wire_strerror(-EPROTO), "unknown frame type, bad magic or unsupported protocol version");
        cr_assert_str_eq(wire_strerror(-ENOMEM), strerror(ENOMEM));
        cr_assert_str_eq(wire_strerror(ECONNRESET), strerror(ECONNRESET), "a positive errno reads the same");
        cr_assert_str_neq(wire_strerror(-EBADMSG), wire_strerror(-EPROTO));
}

/* wire_next: one frame at a time, under a cap tested on the length field
 * alone (4 bytes), before the rest of the frame is there. */
Test(wire, next_caps_a_frame_from_its_length_field) {
        struct proto_wr in;
        struct proto_msg m;
        size_t flen = 12345, one;

        proto_wr_init(&in);
        one = put_frame(&in, PROTO_PING, 1);
        put_frame(&in, PROTO_PING, 2);
        /* Exactly at the cap: taken, one frame only. */
        cr_assert_eq(wire_next(in.buf, in.len, one, &m, &flen), 1);
        cr_assert_eq(flen, one);
        cr_assert_eq(m.seq, 1);
        cr_assert_eq(wire_next(in.buf + flen, in.len - flen, one, &m, &flen), 1);
        cr_assert_eq(m.seq, 2);
        /* One byte over: refused from the first four bytes, outputs untouched. */
        flen = 12345;
        for (size_t k = 4; k <= one; k++)
                cr_assert_eq(wire_next(in.buf, k, one - 1, &m, &flen), -EMSGSIZE, "k=%zu", k);
        cr_assert_eq(flen, 12345);
        /* Fewer than four bytes, or a partial frame under the cap: more needed. */
        for (size_t k = 0; k < one; k++)
                cr_assert_eq(wire_next(in.buf, k, one, &m, &flen), 0, "k=%zu", k);
        cr_assert_eq(flen, 12345);
        proto_wr_free(&in);
}

Test(wire, next_reports_decode_errors) {
        uint8_t bad_len[9] = { 0, 0, 0, 1, PROTO_PING };        /* len 1: shorter than a header */
        uint8_t bad_type[9] = { 0, 0, 0, 5, 200, 0, 0, 0, 1 };  /* unknown type */
        struct proto_msg m;
        size_t flen = 7;

        cr_assert_eq(wire_next(bad_len, sizeof(bad_len), PROTO_FRAME_MAX + 4, &m, &flen), -EBADMSG);
        cr_assert_eq(wire_next(bad_type, sizeof(bad_type), PROTO_FRAME_MAX + 4, &m, &flen), -EPROTO);
        cr_assert_eq(flen, 7);
}
