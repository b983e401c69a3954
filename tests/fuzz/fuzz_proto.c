/* libFuzzer target for proto/: frame split, decode, INV iteration, and a
 * re-encode that must reproduce what was decoded.
 *
 * Invariants checked (abort() on a break, so libFuzzer keeps the input):
 *  - proto_frame_len and proto_msg_decode agree: a buffer that is not a
 *    whole frame never decodes.
 *  - A decoded INV iterates to exactly count entries without error (decode
 *    validated them all).
 *  - A decoded message re-encodes without error, the result re-decodes to the
 *    same fields, and the bytes are the original frame (except HELLO, which
 *    drops fields appended by a newer version; its prefix must match).
 *
 * Build and run: tests/fuzz/run. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                              \
        do {                                                                                  \
                if (!(c)) {                                                                   \
                        fprintf(stderr, "fuzz_proto: %s:%d: %s\n", __FILE__, __LINE__, #c); \
                        abort();                                                              \
                }                                                                             \
        } while (0)

/* Independent of proto_name_ok, so a slip there is caught here: what the
 * decoder lets through must be one path component the receiver can create
 * inside its directory. */
static void check_component(const char *s) {
        size_t n = strlen(s);

        CHECK(n >= 1 && n <= PROTO_NAME_MAX);
        CHECK(strchr(s, '/') == NULL);
        CHECK(strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
}

/* [A-Za-z0-9._-]{0,64}, again without proto_node_ok. */
static void check_node(const char *s) {
        CHECK(strlen(s) <= PROTO_NODE_MAX);
        CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == strlen(s));
}

/* Walk INV entries; if wr, append them to it. Returns the number seen. */
static uint32_t walk_inv(const struct proto_msg *m, struct proto_wr *wr) {
        struct proto_inv_ent e;
        struct proto_rd rd;
        uint32_t left = m->count, n = 0;
        int r;

        proto_rd_init(&rd, m->data, m->data_len);
        while ((r = proto_inv_next(&rd, &left, &e)) > 0) {
                check_component(e.name);
                CHECK(e.kind <= PROTO_KIND_EXPIRE);
                if (wr)
                        proto_inv_add(wr, e.name, e.kind, &e.ver);
                n++;
        }
        CHECK(r == 0);
        CHECK(left == 0);
        CHECK(n == m->count);
        return n;
}

static void check_fields(const struct proto_msg *a, const struct proto_msg *b) {
        CHECK(a->type == b->type);
        CHECK(a->seq == b->seq);
        CHECK(a->version == b->version);
        CHECK(a->clock_ns == b->clock_ns);
        CHECK(a->echo_ns == b->echo_ns);
        CHECK(strcmp(a->node, b->node) == 0);
        CHECK(strcmp(a->to, b->to) == 0);
        CHECK(strcmp(a->name, b->name) == 0);
        CHECK(a->ver.mtime_ns == b->ver.mtime_ns);
        CHECK(a->ver.hash == b->ver.hash);
        CHECK(a->kind == b->kind);
        CHECK(a->basis_hash == b->basis_hash);
        CHECK(a->size == b->size);
        CHECK(a->ack_seq == b->ack_seq);
        CHECK(a->status == b->status);
        CHECK(a->count == b->count);
        CHECK(a->data_len == b->data_len);
        CHECK(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct proto_msg m, m2;
        struct proto_wr wr;
        uint8_t *frame;
        size_t flen = 0, flen2 = 0, start;
        int r;

        r = proto_frame_len(data, size, &flen);
        if (r < 0) {
                CHECK(r == -EAGAIN || r == -EBADMSG || r == -EMSGSIZE);
                /* Not a whole frame: the decoder must refuse it too. */
                CHECK(proto_msg_decode(data, size, &m) < 0);
                return 0;
        }
        CHECK(flen >= PROTO_HDR_LEN && flen <= size && flen - 4 <= PROTO_FRAME_MAX);

        /* An exact-size heap copy, so ASan sees a read past the frame even
         * when the fuzzer's buffer goes on. */
        frame = malloc(flen);
        CHECK(frame);
        memcpy(frame, data, flen);
        r = proto_msg_decode(frame, flen, &m);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -EMSGSIZE || r == -EPROTO);
                free(frame);
                return 0;
        }
        CHECK(m.type >= 1 && m.type <= PROTO_TYPE_MAX_);
        switch (m.type) {
        case PROTO_FILE: case PROTO_DELTA: case PROTO_TOUCH: case PROTO_DELETE: case PROTO_ACK:
                check_component(m.name);
                CHECK(m.data_len <= PROTO_DATA_MAX && m.size <= PROTO_DATA_MAX);
                break;
        case PROTO_HELLO:
                CHECK(m.version >= PROTO_VERSION);
                CHECK(m.node[0] && m.to[0]);
                break;
        case PROTO_INV:
                CHECK(m.count <= PROTO_INV_MAX);
                break;
        }
        check_node(m.node);
        check_node(m.to);
        (void)proto_type_name(m.type);
        (void)proto_status_name(m.status);

        proto_wr_init(&wr);
        if (m.type == PROTO_INV) {
                start = proto_inv_begin(&wr, m.seq);
                walk_inv(&m, &wr);
                r = proto_inv_end(&wr, start, m.count);
        } else {
                r = proto_msg_encode(&wr, &m);
        }
        CHECK(r == 0);
        CHECK(proto_frame_len(wr.buf, wr.len, &flen2) == 0);
        CHECK(flen2 == wr.len);
        if (m.type == PROTO_HELLO) {
                CHECK(wr.len <= flen);
                CHECK(memcmp(wr.buf + 4, frame + 4, wr.len - 4) == 0);
        } else {
                CHECK(wr.len == flen);
                CHECK(memcmp(wr.buf, frame, flen) == 0);
        }

        CHECK(proto_msg_decode(wr.buf, wr.len, &m2) == 0);
        check_fields(&m, &m2);
        if (m2.type == PROTO_INV)
                walk_inv(&m2, NULL);

        proto_wr_free(&wr);
        free(frame);
        return 0;
}
