#include "daemon/send.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/node.h"
#include "lib/delta.h"
#include "lib/state.h"
#include "proto/msg.h"

#define SEND_BUSY_MS 5

/* Bytes a whole-file frame for this entry would take: the yardstick of
 * bytes_full, so 1 - bytes_sent/bytes_full is what deltas and touches saved. */
static uint64_t whole_size(const struct ent *e, size_t len) {
        return PROTO_HDR_LEN + 1 + strlen(e->name) + 16 + 4 + len;
}

static int send_delete(struct node *n, size_t idx, struct ent *e, struct proto_wr *wr, uint32_t seq) {
        struct ent_peer *ep = &e->peer[idx];
        struct proto_msg m = { .type = PROTO_DELETE, .seq = seq, .kind = e->kind, .ver = e->ver };
        size_t before = wr->len;
        int r;

        if (ep->has_kind == e->kind && proto_ver_cmp(&ep->has, &e->ver) == 0)
                return 0;
        /* The tombstone reaches the disk before the DELETE leaves. */
        if ((r = state_sync(n->state)) < 0)
                return r;
        strcpy(m.name, e->name);
        if ((r = proto_msg_encode(wr, &m)) < 0)
                return r;
        ep->has = e->ver;
        ep->has_kind = e->kind;
        n->stats[idx].bytes_sent += wr->len - before;
        n->stats[idx].bytes_full += wr->len - before;
        return 1;
}

int send_entry(struct node *n, size_t idx, struct ent *e, struct proto_wr *wr, uint32_t seq) {
        struct ent_peer *ep = &e->peer[idx];
        struct proto_msg m = { .seq = seq };
        const uint8_t *data = NULL;
        uint8_t *delta = NULL;
        size_t len = 0, dlen = 0, before = wr->len;
        bool has_file;
        int r;

        if (e->kind == PROTO_KIND_DESTROY || e->kind == PROTO_KIND_EXPIRE)
                return send_delete(n, idx, e, wr, seq);
        if (e->kind != PROTO_KIND_FILE)
                return 0;
        if (node_ver_forgettable(n, &e->ver))
                return 0;   /* receivers refuse it; PHP's GC will remove it here */
        r = node_read(n, e, &data, &len);
        if (r == -ENOENT)   /* deleted since it was queued: the read made it a tombstone */
                return (e->kind == PROTO_KIND_FILE || e->kind == ENT_NONE) ? 0 : send_delete(n, idx, e, wr, seq);
        if (r == -EWOULDBLOCK || r == -ENOBUFS) {
                /* Locked by PHP, or this turn's read budget is spent. */
                node_delay(n, e, idx, SEND_BUSY_MS);
                return 0;
        }
        if (r < 0)
                return r == -EFBIG ? 0 : r;

        has_file = !ep->full && ep->has_kind == PROTO_KIND_FILE;
        if (has_file && proto_ver_cmp(&ep->has, &e->ver) == 0)
                return 0;
        strcpy(m.name, e->name);
        m.ver = e->ver;
        m.size = len;
        if (has_file && ep->has.hash == e->ver.hash) {
                m.type = PROTO_TOUCH;
        } else if (has_file && e->sig && ep->has.hash == e->sig_hash &&
                   delta_make(e->sig, data, len, &delta, &dlen) == 0 && dlen + 16 < len) {
                m.type = PROTO_DELTA;
                m.basis_hash = e->sig_hash;
                m.data = delta;
                m.data_len = dlen;
        } else {
                m.type = PROTO_FILE;
                m.data = data;
                m.data_len = len;
        }
        r = proto_msg_encode(wr, &m);
        free(delta);
        if (r < 0) {
                node_mark_dirty(n, e, idx);
                return r;
        }
        log_debug("\"%s\": %s to peer \"%s\", %zu bytes for a %zu-byte file", e->name, proto_type_name(m.type),
                  n->conf->peers[idx].name, wr->len - before, len);
        ep->full = false;
        ep->has = e->ver;
        ep->has_kind = PROTO_KIND_FILE;
        n->stats[idx].bytes_sent += wr->len - before;
        n->stats[idx].bytes_full += whole_size(e, len);
        return 1;
}
