#include "proto/msg.h"

#include <errno.h>
#include <string.h>

bool proto_name_ok(const char *name, size_t len) {
        if (len == 0 || len > PROTO_NAME_MAX)
                return false;
        if (memchr(name, '/', len) || memchr(name, 0, len))
                return false;
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
                return false;
        return true;
}

bool proto_node_ok(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > PROTO_NODE_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

const char *proto_type_name(uint8_t type) {
        static const char *const names[] = {
                [PROTO_HELLO] = "HELLO", [PROTO_FILE] = "FILE", [PROTO_DELTA] = "DELTA",
                [PROTO_TOUCH] = "TOUCH", [PROTO_DELETE] = "DELETE", [PROTO_ACK] = "ACK",
                [PROTO_INV] = "INV", [PROTO_INV_END] = "INV_END", [PROTO_PING] = "PING",
                [PROTO_PONG] = "PONG", [PROTO_RELAY] = "RELAY", [PROTO_STATUS_REQ] = "STATUS_REQ",
                [PROTO_STATUS] = "STATUS", [PROTO_ERROR] = "ERROR", [PROTO_INV_REQ] = "INV_REQ",
                [PROTO_HANDOFF] = "HANDOFF",
        };
        if (type == 0 || type > PROTO_TYPE_MAX_)
                return "UNKNOWN";
        return names[type];
}

const char *proto_status_name(uint8_t status) {
        static const char *const names[] = {
                [PROTO_ST_OK] = "ok", [PROTO_ST_STALE] = "stale", [PROTO_ST_NEED_FULL] = "need-full",
                [PROTO_ST_BUSY] = "busy", [PROTO_ST_RETRY] = "retry", [PROTO_ST_REJECT] = "reject",
        };
        if (status > PROTO_ST_MAX_)
                return "unknown";
        return names[status];
}

int proto_frame_len(const uint8_t *buf, size_t len, size_t *ret_len) {
        struct proto_rd rd;
        uint32_t n;

        proto_rd_init(&rd, buf, len);
        if (proto_get_u32(&rd, &n) < 0)
                return -EAGAIN;
        if (n > PROTO_FRAME_MAX)
                return -EMSGSIZE;
        if (n < PROTO_HDR_LEN - 4)
                return -EBADMSG;
        if (len - 4 < n)
                return -EAGAIN;
        *ret_len = (size_t)n + 4;
        return 0;
}

/* A session-file name: the wire form is a u8-length string. */
static int get_name(struct proto_rd *rd, char *out) {
        struct proto_rd peek = *rd;
        int r;

        if ((r = proto_get_str(&peek, PROTO_NAME_MAX, out)) < 0)
                return r;
        if (!proto_name_ok(out, strlen(out)))
                return -EBADMSG;
        *rd = peek;
        return 0;
}

static int get_node(struct proto_rd *rd, char *out, bool may_be_empty) {
        struct proto_rd peek = *rd;
        int r;

        if ((r = proto_get_str(&peek, PROTO_NODE_MAX, out)) < 0)
                return r;
        if (!(may_be_empty && out[0] == 0) && !proto_node_ok(out))
                return -EBADMSG;
        *rd = peek;
        return 0;
}

static int get_ver(struct proto_rd *rd, struct proto_ver *v) {
        struct proto_rd peek = *rd;
        int r;

        if ((r = proto_get_u64(&peek, &v->mtime_ns)) < 0 || (r = proto_get_u64(&peek, &v->hash)) < 0)
                return r;
        *rd = peek;
        return 0;
}

static int get_inv_ent(struct proto_rd *rd, struct proto_inv_ent *e) {
        struct proto_rd peek = *rd;
        int r;

        if ((r = get_name(&peek, e->name)) < 0 || (r = proto_get_u8(&peek, &e->kind)) < 0 ||
            (r = get_ver(&peek, &e->ver)) < 0)
                return r;
        if (e->kind > PROTO_KIND_EXPIRE)
                return -EBADMSG;
        *rd = peek;
        return 0;
}

int proto_inv_next(struct proto_rd *rd, uint32_t *left, struct proto_inv_ent *ret) {
        struct proto_inv_ent e;
        int r;

        if (*left == 0)
                return proto_rd_end(rd) < 0 ? -EBADMSG : 0;
        /* Into a local: get_inv_ent fills fields before it validates, and
         * a getter leaves *ret alone on failure. */
        if ((r = get_inv_ent(rd, &e)) < 0)
                return r;
        *ret = e;
        (*left)--;
        return 1;
}

static int decode_payload(struct proto_rd *rd, struct proto_msg *m) {
        uint32_t magic;
        int r = 0;

        switch (m->type) {
        case PROTO_HELLO:
                if ((r = proto_get_u32(rd, &magic)) < 0)
                        return r;
                if (magic != PROTO_MAGIC)
                        return -EPROTO;
                if ((r = proto_get_u16(rd, &m->version)) < 0 || (r = proto_get_u64(rd, &m->clock_ns)) < 0 ||
                    (r = get_node(rd, m->node, false)) < 0 || (r = get_node(rd, m->to, false)) < 0)
                        return r;
                /* A newer version may append fields to HELLO: they are
                 * ignored here, so do not insist on the end. */
                if (m->version < PROTO_VERSION)
                        return -EPROTO;
                rd->off = rd->len;
                return 0;
        case PROTO_FILE:
                if ((r = get_name(rd, m->name)) < 0 || (r = get_ver(rd, &m->ver)) < 0 ||
                    (r = proto_get_blob(rd, PROTO_DATA_MAX, &m->data, &m->data_len)) < 0)
                        return r;
                m->size = m->data_len;
                break;
        case PROTO_DELTA:
                if ((r = get_name(rd, m->name)) < 0 || (r = get_ver(rd, &m->ver)) < 0 ||
                    (r = proto_get_u64(rd, &m->basis_hash)) < 0 || (r = proto_get_u64(rd, &m->size)) < 0 ||
                    (r = proto_get_blob(rd, PROTO_DATA_MAX, &m->data, &m->data_len)) < 0)
                        return r;
                if (m->size > PROTO_DATA_MAX)
                        return -EMSGSIZE;
                break;
        case PROTO_TOUCH:
                if ((r = get_name(rd, m->name)) < 0 || (r = get_ver(rd, &m->ver)) < 0)
                        return r;
                break;
        case PROTO_DELETE:
                if ((r = get_name(rd, m->name)) < 0 || (r = proto_get_u8(rd, &m->kind)) < 0 ||
                    (r = get_ver(rd, &m->ver)) < 0)
                        return r;
                if (m->kind != PROTO_KIND_DESTROY && m->kind != PROTO_KIND_EXPIRE)
                        return -EBADMSG;
                break;
        case PROTO_ACK:
                if ((r = proto_get_u32(rd, &m->ack_seq)) < 0 || (r = proto_get_u8(rd, &m->status)) < 0 ||
                    (r = get_name(rd, m->name)) < 0 || (r = proto_get_u8(rd, &m->kind)) < 0 ||
                    (r = get_ver(rd, &m->ver)) < 0)
                        return r;
                if (m->status > PROTO_ST_MAX_ || m->kind > PROTO_KIND_EXPIRE)
                        return -EBADMSG;
                break;
        case PROTO_INV: {
                struct proto_rd ents;
                struct proto_inv_ent e;
                uint32_t left;

                if ((r = proto_get_u32(rd, &m->count)) < 0)
                        return r;
                if (m->count > PROTO_INV_MAX)
                        return -EMSGSIZE;
                /* Validate every entry now so that iterating later cannot fail. */
                m->data = rd->p + rd->off;
                m->data_len = proto_rd_left(rd);
                proto_rd_init(&ents, m->data, m->data_len);
                left = m->count;
                while ((r = proto_inv_next(&ents, &left, &e)) > 0)
                        ;
                if (r < 0)
                        return r;
                rd->off = rd->len;
                break;
        }
        case PROTO_INV_END:
                if ((r = proto_get_u32(rd, &m->count)) < 0)
                        return r;
                break;
        case PROTO_PING:
                if ((r = proto_get_u64(rd, &m->clock_ns)) < 0)
                        return r;
                break;
        case PROTO_PONG:
                if ((r = proto_get_u64(rd, &m->echo_ns)) < 0 || (r = proto_get_u64(rd, &m->clock_ns)) < 0)
                        return r;
                break;
        case PROTO_RELAY:
                if ((r = get_node(rd, m->node, true)) < 0)
                        return r;
                break;
        case PROTO_STATUS_REQ:
                if ((r = proto_get_u8(rd, &m->kind)) < 0)
                        return r;
                break;
        case PROTO_INV_REQ:
        case PROTO_HANDOFF:
                break;
        case PROTO_STATUS:
        case PROTO_ERROR:
                if ((r = proto_get_blob(rd, PROTO_DATA_MAX, &m->data, &m->data_len)) < 0)
                        return r;
                break;
        default:
                return -EPROTO;
        }
        return proto_rd_end(rd);
}

int proto_msg_decode(const uint8_t *frame, size_t len, struct proto_msg *ret) {
        struct proto_msg m;
        struct proto_rd rd;
        uint32_t n;
        int r;

        memset(&m, 0, sizeof(m));
        proto_rd_init(&rd, frame, len);
        if ((r = proto_get_u32(&rd, &n)) < 0)
                return r;
        if (n > PROTO_FRAME_MAX)
                return -EMSGSIZE;
        if ((size_t)n != len - 4)
                return -EBADMSG;
        if ((r = proto_get_u8(&rd, &m.type)) < 0 || (r = proto_get_u32(&rd, &m.seq)) < 0)
                return r;
        if ((r = decode_payload(&rd, &m)) < 0)
                return r;
        *ret = m;
        return 0;
}

static size_t frame_begin(struct proto_wr *wr, uint8_t type, uint32_t seq) {
        size_t start = wr->len;

        proto_put_u32(wr, 0);
        proto_put_u8(wr, type);
        proto_put_u32(wr, seq);
        return start;
}

static int frame_end(struct proto_wr *wr, size_t start) {
        size_t n;

        if (wr->err)
                return wr->err;
        n = wr->len - start - 4;
        if (n > PROTO_FRAME_MAX) {
                wr->len = start;
                return -EMSGSIZE;
        }
        proto_poke_u32(wr, start, (uint32_t)n);
        return 0;
}

static void put_ver(struct proto_wr *wr, const struct proto_ver *v) {
        proto_put_u64(wr, v->mtime_ns);
        proto_put_u64(wr, v->hash);
}

int proto_msg_encode(struct proto_wr *wr, const struct proto_msg *m) {
        size_t start;

        if (m->data_len > PROTO_DATA_MAX)
                return -EMSGSIZE;
        start = frame_begin(wr, m->type, m->seq);
        switch (m->type) {
        case PROTO_HELLO:
                proto_put_u32(wr, PROTO_MAGIC);
                proto_put_u16(wr, m->version ? m->version : PROTO_VERSION);
                proto_put_u64(wr, m->clock_ns);
                proto_put_str(wr, m->node);
                proto_put_str(wr, m->to);
                break;
        case PROTO_FILE:
                proto_put_str(wr, m->name);
                put_ver(wr, &m->ver);
                proto_put_blob(wr, m->data, m->data_len);
                break;
        case PROTO_DELTA:
                proto_put_str(wr, m->name);
                put_ver(wr, &m->ver);
                proto_put_u64(wr, m->basis_hash);
                proto_put_u64(wr, m->size);
                proto_put_blob(wr, m->data, m->data_len);
                break;
        case PROTO_TOUCH:
                proto_put_str(wr, m->name);
                put_ver(wr, &m->ver);
                break;
        case PROTO_DELETE:
                proto_put_str(wr, m->name);
                proto_put_u8(wr, m->kind);
                put_ver(wr, &m->ver);
                break;
        case PROTO_ACK:
                proto_put_u32(wr, m->ack_seq);
                proto_put_u8(wr, m->status);
                proto_put_str(wr, m->name);
                proto_put_u8(wr, m->kind);
                put_ver(wr, &m->ver);
                break;
        case PROTO_INV_END:
                proto_put_u32(wr, m->count);
                break;
        case PROTO_PING:
                proto_put_u64(wr, m->clock_ns);
                break;
        case PROTO_PONG:
                proto_put_u64(wr, m->echo_ns);
                proto_put_u64(wr, m->clock_ns);
                break;
        case PROTO_RELAY:
                proto_put_str(wr, m->node);
                break;
        case PROTO_STATUS_REQ:
                proto_put_u8(wr, m->kind);
                break;
        case PROTO_INV_REQ:
        case PROTO_HANDOFF:
                break;
        case PROTO_STATUS:
        case PROTO_ERROR:
                proto_put_blob(wr, m->data, m->data_len);
                break;
        default:
                wr->len = start;
                return -EPROTO;
        }
        return frame_end(wr, start);
}

size_t proto_inv_begin(struct proto_wr *wr, uint32_t seq) {
        size_t start = frame_begin(wr, PROTO_INV, seq);

        proto_put_u32(wr, 0);   /* count, fixed up by proto_inv_end */
        return start;
}

void proto_inv_add(struct proto_wr *wr, const char *name, uint8_t kind, const struct proto_ver *ver) {
        proto_put_str(wr, name);
        proto_put_u8(wr, kind);
        put_ver(wr, ver);
}

int proto_inv_end(struct proto_wr *wr, size_t start, uint32_t count) {
        if (count > PROTO_INV_MAX) {
                wr->len = start;
                return -EMSGSIZE;
        }
        proto_poke_u32(wr, start + PROTO_HDR_LEN, count);
        return frame_end(wr, start);
}
