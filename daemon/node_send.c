/* The sender (docs/DESIGN.md "Deltas"): the frame for one dirty entry and
 * one peer, and what the peer's ACK means for that entry. Nothing if the
 * peer already holds this version, a TOUCH if it holds the same bytes under
 * another mtime, a DELTA against a kept basis if the peer holds that
 * basis and the delta is smaller, else the whole FILE; a DELETE for a
 * tombstone. Sending only reads: a file that is not at its recorded version
 * any more goes back to change detection (node_check) for the next turn. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <stdio.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "proto/msg.h"

#define SEND_BUSY_MS 5                  /* locked by PHP, or this turn's read budget spent */
#define SEND_LOCK_SHIFT_MAX 6           /* still locked: doubled per try up to 64x (320 ms) */
#define SEND_RETRY_MS 1000              /* a transient failure, or the peer's RETRY */
#define SEND_PEER_BUSY_MS 10            /* the peer's BUSY, doubled per try up to 128x */

static const char *peer_of(const struct node *n, size_t idx) {
        return n->conf->peers[idx].name;
}

/* Bytes a whole-file frame for this entry would take: the yardstick of
 * bytes_full, so 1 - bytes_sent/bytes_full is what deltas and touches saved. */
static uint64_t whole_size(const struct node_ent *e, size_t len) {
        return PROTO_HDR_LEN + 1 + strlen(e->name) + 16 + 4 + len;
}

static int send_delete(struct node *n, size_t idx, struct node_ent *e, struct proto_wr *wr, uint32_t seq) {
        struct node_ent_peer *ep = &e->peer[idx];
        struct node_stats *st = &n->peer[idx].stats;
        struct proto_msg m = { .type = PROTO_DELETE, .seq = seq, .kind = e->kind, .ver = e->ver };
        size_t before = wr->len;
        int r;

        if (ep->has_kind == e->kind && ver_cmp(&ep->has, &e->ver) == 0)
                return 0;
        /* The tombstone reached the disk this turn (node_make_durable)
         * before any DELETE leaves; if that failed, hold it back. */
        if (!n->durable)
                return -EIO;
        strcpy(m.name, e->name);
        if ((r = proto_msg_encode(wr, &m)) < 0)
                return r;
        ep->has = e->ver;
        ep->has_kind = e->kind;
        st->bytes_sent += wr->len - before;
        st->bytes_full += wr->len - before;
        return 1;
}

/* Returns 1 (a frame appended), 0 (nothing to send for e now), <0 error. */
static int send_entry(struct node *n, size_t idx, struct node_ent *e, struct proto_wr *wr, uint32_t seq) {
        struct node_ent_peer *ep = &e->peer[idx];
        struct node_stats *st = &n->peer[idx].stats;
        struct proto_msg m = { .seq = seq };
        const uint8_t *data = NULL, *delta = NULL;
        size_t len = 0, dlen = 0, before = wr->len;
        bool has_file, older = false;
        int r;

        if (ver_is_tomb(e->kind))
                return send_delete(n, idx, e, wr, seq);
        if (e->kind != VER_KIND_FILE)
                return 0;
        if (node_forgettable(n, &e->ver))
                return 0;   /* receivers refuse it; PHP's GC will remove it here */
        has_file = !ep->full && ep->has_kind == VER_KIND_FILE;
        if (has_file && ver_cmp(&ep->has, &e->ver) == 0)
                return 0;
        r = node_turn_read(n, e, &data, &len);
        if (r == -ESTALE || r == -ENOENT) {
                /* Changed or gone since it was recorded: the next turn's
                 * check records that and marks every peer; this peer keeps
                 * its place (the delay also wakes the loop). */
                node_check(n, e->name);
                node_delay(n, e, idx, SEND_BUSY_MS);
                return 0;
        }
        if (r == -EWOULDBLOCK) {
                /* A lock held long is not polled every 5 ms (docs/DESIGN.md
                 * "Change detection"); PHP's close makes a check anyway. */
                node_delay(n, e, idx, SEND_BUSY_MS << (ep->lock_tries < SEND_LOCK_SHIFT_MAX ? ep->lock_tries
                                                                                          : SEND_LOCK_SHIFT_MAX));
                if (ep->lock_tries < UINT8_MAX)
                        ep->lock_tries++;
                return 0;
        }
        if (r == -ENOBUFS) {
                node_delay(n, e, idx, SEND_BUSY_MS);
                return 0;
        }
        ep->lock_tries = 0;
        if (r == -EFBIG)
                return 0;
        if (r == -EPERM || r == -EMLINK)
                return 0;   /* not PHP's own now: off this peer's queue until it is again (node_file.c) */
        if (r < 0)
                return r;

        strcpy(m.name, e->name);
        m.ver = e->ver;
        m.size = len;
        if (has_file && ep->has.hash == e->ver.hash) {
                m.type = PROTO_TOUCH;
        } else if (has_file && node_turn_delta(n, e, ep->has.hash, &data, &delta, &dlen, &older) == 0 &&
                   dlen + 16 < len) {
                /* Against the basis this peer holds: the newest, or the
                 * older one a lagging peer still has (node_turn.c). */
                m.type = PROTO_DELTA;
                m.basis_hash = ep->has.hash;
                m.data = delta;
                m.data_len = dlen;
        } else {
                m.type = PROTO_FILE;
                m.data = data;
                m.data_len = len;
        }
        r = proto_msg_encode(wr, &m);
        if (r < 0)
                return r;
        log_debug("session %s: %s to peer \"%s\", %zu bytes for a %zu-byte file", e->tag, proto_type_name(m.type),
                  peer_of(n, idx), wr->len - before, len);
        ep->full = false;
        ep->via_older = m.type == PROTO_DELTA && older;
        ep->has = e->ver;
        ep->has_kind = VER_KIND_FILE;
        st->bytes_sent += wr->len - before;
        st->bytes_full += whole_size(e, len);
        return 1;
}

int node_send_next(struct node *n, size_t idx, struct proto_wr *wr, uint32_t seq) {
        struct node_ent *e;

        n->peer[idx].live_ms = loop_clock_ms();   /* only a connected peer is asked (node_turn.c's held) */

        while ((e = node_next_dirty(n, idx))) {
                int r = send_entry(n, idx, e, wr, seq);

                if (r > 0)
                        return 1;
                if (r < 0) {
                        /* A transient failure (EMFILE, EIO, ENOMEM): keep the
                         * change, try again in a second. */
                        log_warn("peer \"%s\": session %s: %s; retrying", peer_of(n, idx), e->tag, strerror(-r));
                        node_delay(n, e, idx, SEND_RETRY_MS);
                        return r;
                }
        }
        return 0;
}

enum node_ack_result node_ack(struct node *n, size_t idx, const struct proto_msg *m) {
        struct node_stats *st = &n->peer[idx].stats;
        struct node_ent *e = node_get(n, m->name);
        struct node_ent_peer *ep;

        n->peer[idx].live_ms = loop_clock_ms();
        if (!e)
                return NODE_ACK_UNKNOWN;
        ep = &e->peer[idx];
        switch (m->status) {
        case PROTO_ST_OK:
                ep->busy_tries = 0;
                st->applied++;
                ep->has = m->ver;
                ep->has_kind = m->kind;
                return NODE_ACK_DONE;
        case PROTO_ST_STALE:
                st->conflicts++;
                ep->has = m->ver;
                ep->has_kind = m->kind;
                return NODE_ACK_STALE;
        case PROTO_ST_NEED_FULL:
                ep->has_kind = VER_KIND_NONE;
                ep->full = true;
                node_mark_dirty(n, e, idx);
                return NODE_ACK_DONE;
        case PROTO_ST_BUSY:
                /* Nothing changed there: it still holds the delta basis
                 * (the older one if the frame was a delta against that), so
                 * the retry stays a delta (a wrong guess costs one
                 * NEED_FULL). Back off while a long PHP request holds the
                 * lock. */
                if (ep->via_older && e->older) {
                        ep->has_kind = VER_KIND_FILE;
                        ep->has = (struct proto_ver){ 0, e->older->hash };
                } else {
                        ep->has_kind = e->sig ? VER_KIND_FILE : VER_KIND_NONE;
                        ep->has = (struct proto_ver){ 0, e->sig_hash };
                }
                node_delay(n, e, idx, SEND_PEER_BUSY_MS << (ep->busy_tries < 7 ? ep->busy_tries : 7));
                if (ep->busy_tries < 255)
                        ep->busy_tries++;
                return NODE_ACK_DONE;
        case PROTO_ST_RETRY:
                st->errors++;
                ep->has_kind = VER_KIND_NONE;
                node_delay(n, e, idx, SEND_RETRY_MS);
                return NODE_ACK_RETRY;
        default:
                st->errors++;
                st->rejected++;
                return NODE_ACK_REFUSED;
        }
}
