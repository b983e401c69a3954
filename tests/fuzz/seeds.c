/* Seed corpus for fuzz_proto: one valid frame of every message type, plus a
 * HELLO with appended fields, two-byte names and two frames back to back,
 * written to the directory given as argv[1]. Run by tests/fuzz/run. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/msg.h"

static const uint8_t content[] = "a|s:5:\"hello\";n|i:42;";

static int write_seed(const char *dir, const char *name, const struct proto_wr *wr) {
        char path[4096];
        FILE *f;
        int r = 0;

        snprintf(path, sizeof(path), "%s/seed_%s", dir, name);
        f = fopen(path, "we");
        if (!f) {
                fprintf(stderr, "seeds: \"%s\": %s\n", path, strerror(errno));
                return -errno;
        }
        if (fwrite(wr->buf, 1, wr->len, f) != wr->len)
                r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r < 0)
                fprintf(stderr, "seeds: \"%s\": %s\n", path, strerror(-r));
        return r;
}

static void fill(uint8_t type, struct proto_msg *m) {
        const struct proto_ver ver = { UINT64_C(1700000000123456789), UINT64_C(0x0123456789abcdef) };

        memset(m, 0, sizeof(*m));
        m->type = type;
        m->seq = type * 10u;
        switch (type) {
        case PROTO_HELLO:
                m->version = PROTO_VERSION;
                m->clock_ns = UINT64_C(1700000000000000000);
                strcpy(m->node, "web1");
                strcpy(m->to, "web2");
                break;
        case PROTO_FILE:
        case PROTO_DELTA:
        case PROTO_TOUCH:
        case PROTO_DELETE:
        case PROTO_ACK:
                strcpy(m->name, "sess_0123456789abcdef");
                m->ver = ver;
                m->data = content;
                m->data_len = m->size = sizeof(content) - 1;
                m->basis_hash = UINT64_C(0xfedcba9876543210);
                m->kind = type == PROTO_DELETE ? PROTO_KIND_DESTROY : PROTO_KIND_FILE;
                m->ack_seq = 20;
                m->status = PROTO_ST_OK;
                if (type != PROTO_FILE && type != PROTO_DELTA)
                        m->data_len = 0;
                break;
        case PROTO_INV_END:
                m->count = 3;
                break;
        case PROTO_PING:
        case PROTO_PONG:
                m->clock_ns = UINT64_C(1700000000000000001);
                m->echo_ns = UINT64_C(1700000000000000000);
                break;
        case PROTO_RELAY:
                strcpy(m->node, "web1");
                break;
        case PROTO_STATUS_REQ:
                m->kind = PROTO_STATUS_JSON;
                break;
        case PROTO_STATUS:
        case PROTO_ERROR:
                m->data = (const uint8_t *)"peer \"web2\": up";
                m->data_len = 15;
                break;
        }
}

int main(int argc, char **argv) {
        const struct proto_ver ver = { 5, 6 };
        struct proto_wr wr;
        struct proto_msg m;
        size_t start;
        int r = 0;

        if (argc != 2) {
                fprintf(stderr, "usage: seeds DIR\n");
                return 2;
        }
        proto_wr_init(&wr);
        for (uint8_t t = 1; t <= PROTO_TYPE_MAX_ && r == 0; t++) {
                proto_wr_reset(&wr);
                if (t == PROTO_INV) {
                        start = proto_inv_begin(&wr, 70);
                        proto_inv_add(&wr, "sess_a", PROTO_KIND_FILE, &ver);
                        proto_inv_add(&wr, "sess_b", PROTO_KIND_DESTROY, &ver);
                        proto_inv_add(&wr, "sess_c", PROTO_KIND_EXPIRE, &ver);
                        r = proto_inv_end(&wr, start, 3);
                } else {
                        fill(t, &m);
                        r = proto_msg_encode(&wr, &m);
                }
                if (r == 0)
                        r = write_seed(argv[1], proto_type_name(t), &wr);
        }
        if (r == 0) {
                /* A HELLO from a newer version, with appended fields. */
                proto_wr_reset(&wr);
                fill(PROTO_HELLO, &m);
                m.version = PROTO_VERSION + 1;
                r = proto_msg_encode(&wr, &m);
                proto_put_u32(&wr, 0xabcdef01);
                proto_poke_u32(&wr, 0, (uint32_t)(wr.len - 4));
                if (r == 0 && (r = proto_wr_error(&wr)) == 0)
                        r = write_seed(argv[1], "HELLO_v2", &wr);
        }
        if (r == 0) {
                /* Two-byte names: one dictionary overwrite away from "..".
                 * Valid for proto, which does not check the "sess_" prefix. */
                proto_wr_reset(&wr);
                fill(PROTO_DELETE, &m);
                strcpy(m.name, "ab");
                r = proto_msg_encode(&wr, &m);
                start = proto_inv_begin(&wr, 71);
                proto_inv_add(&wr, "cd", PROTO_KIND_FILE, &ver);
                if (r == 0 && (r = proto_inv_end(&wr, start, 1)) == 0)
                        r = write_seed(argv[1], "short_names", &wr);
        }
        if (r == 0) {
                /* Two frames in one read. */
                proto_wr_reset(&wr);
                fill(PROTO_PING, &m);
                r = proto_msg_encode(&wr, &m);
                fill(PROTO_TOUCH, &m);
                if (r == 0 && (r = proto_msg_encode(&wr, &m)) == 0)
                        r = write_seed(argv[1], "PING_TOUCH", &wr);
        }
        proto_wr_free(&wr);
        if (r < 0) {
                fprintf(stderr, "seeds: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
