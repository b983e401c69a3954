/* Catch-up (docs/DESIGN.md "Catch-up and full sync"): compare a peer's
 * inventory with the table and mark what it lacks or holds older; and
 * encode this node's own inventory for a peer that asks. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "lib/sess.h"
#include "proto/msg.h"

/* Entries per INV frame are capped by count (PROTO_INV_MAX) and by bytes,
 * so one frame stays far below the frame cap. */
#define NODE_INV_BYTES (1u << 20)

void node_catchup_begin(struct node *n, size_t idx) {
        node_ready_begin(n, idx);
        for (struct node_ent *e = n->table; e; e = e->hh.next) {
                e->peer[idx].missing = true;
                node_ready_want(n, e, idx, false);   /* this comparison decides anew */
        }
        n->peer[idx].catchup_found = 0;
}

void node_catchup_entry(struct node *n, size_t idx, const struct proto_inv_ent *ie) {
        struct node_ent *e = node_get(n, ie->name);
        bool want = !(ie->kind == VER_KIND_FILE && node_forgettable(n, &ie->ver));   /* it will not send those */
        struct node_ent_peer *ep;

        /* A name from the wire is checked like one from the directory: a
         * peer cannot make this node track (or wait for) what is no session. */
        if (!sess_name_valid(ie->name, n->conf->session_format, n->conf->session_prefix))
                return;
        /* Theirs alone: the peer pushes it to us itself. Until this node is
         * ready it is remembered as wanted (bounded by the inventory). */
        if (!e && (!want || node_ready(n) || !(e = node_ensure(n, ie->name))))
                return;
        ep = &e->peer[idx];
        ep->missing = false;
        ep->has = ie->ver;
        ep->has_kind = ie->kind;
        ep->full = false;
        if (ver_state_beats(e->kind, &e->ver, ie->kind, &ie->ver)) {
                node_mark_dirty(n, e, idx);
                n->peer[idx].catchup_found++;
        } else {
                node_clear_dirty(n, e, idx);   /* it has this or better already */
        }
        node_ready_want(n, e, idx, want && ver_state_beats(ie->kind, &ie->ver, e->kind, &e->ver));
}

size_t node_catchup_finish(struct node *n, size_t idx) {
        for (struct node_ent *e = n->table; e; e = e->hh.next) {
                struct node_ent_peer *ep = &e->peer[idx];

                if (!ep->missing)
                        continue;
                ep->missing = false;
                ep->has_kind = VER_KIND_NONE;
                ep->has = (struct proto_ver){ 0, 0 };
                if (e->kind != VER_KIND_NONE) {
                        node_mark_dirty(n, e, idx);
                        n->peer[idx].catchup_found++;
                }
        }
        node_ready_compared(n, idx);
        return n->peer[idx].catchup_found;
}

/* A second name made for a file outside the directory raises no event
 * here: look at the link count and owner as the inventory is built, so a
 * returning peer is not promised what the sender will refuse to send. */
static bool own_on_disk(const struct node *n, const struct node_ent *e) {
        struct stat st;

        if (fstatat(n->dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return true;   /* gone: the check will make it a tombstone; advertise what we hold */
        return sess_owned(&st, n->php_uid, 0) == 0;
}

void node_inv_encode(const struct node *n, struct proto_wr *wr) {
        struct proto_msg end = { .type = PROTO_INV_END };
        size_t start = 0;
        uint32_t count = 0, total = 0;

        for (const struct node_ent *e = n->table; e; e = e->hh.next) {
                /* Not what this node would send: a file that is not PHP's own
                 * now is not advertised either, or a returning peer would
                 * wait for it until its ready_timeout. */
                if (e->kind == VER_KIND_NONE || (e->kind == VER_KIND_FILE && (e->skip || !own_on_disk(n, e))))
                        continue;
                if (count == 0)
                        start = proto_inv_begin(wr, 0);
                proto_inv_add(wr, e->name, e->kind, &e->ver);
                count++;
                total++;
                if (count == PROTO_INV_MAX || wr->len - start > NODE_INV_BYTES) {
                        (void)proto_inv_end(wr, start, count);
                        count = 0;
                }
        }
        if (count)
                (void)proto_inv_end(wr, start, count);
        end.count = total;
        (void)proto_msg_encode(wr, &end);
}
