/* What the pushing side does with the peer's answers (DESIGN.md
 * "Catch-up", "Versions"): check its HELLO and the clocks, compare its
 * inventory with ours to fill its dirty set, and act on each ACK. */
#include "daemon/peer.h"
#include "daemon/peer_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "proto/msg.h"

void peer_start_catchup(struct peer *p) {
        for (struct ent *e = p->node->table; e; e = e->hh.next)
                e->peer[p->idx].missing = true;
        p->catchup_found = 0;
}

void peer_inv_entry(struct peer *p, const struct proto_inv_ent *ie) {
        struct ent *e = node_get(p->node, ie->name);
        struct ent_peer *ep;

        if (!e)
                return;   /* theirs alone: the peer pushes it to us itself */
        ep = &e->peer[p->idx];
        ep->missing = false;
        ep->has = ie->ver;
        ep->has_kind = ie->kind;
        ep->full = false;
        if (node_state_beats(e->kind, &e->ver, ie->kind, &ie->ver)) {
                node_mark_dirty(p->node, e, p->idx);
                p->catchup_found++;
        } else
                node_clear_dirty(p->node, e, p->idx);   /* it has this or better already */
}

size_t peer_finish_catchup(struct peer *p) {
        for (struct ent *e = p->node->table; e; e = e->hh.next) {
                struct ent_peer *ep = &e->peer[p->idx];

                if (!ep->missing)
                        continue;
                ep->missing = false;
                ep->has_kind = ENT_NONE;
                ep->has = (struct proto_ver){ 0, 0 };
                if (e->kind != ENT_NONE) {
                        node_mark_dirty(p->node, e, p->idx);
                        p->catchup_found++;
                }
        }
        return p->catchup_found;
}

int peer_on_hello(struct peer *p, const struct proto_msg *m) {
        char why[300];
        int64_t skew_ms;
        uint64_t now = loop_realtime_ns();

        if (strcmp(m->node, pname(p)) != 0) {
                snprintf(why, sizeof(why), "reached node \"%s\", not \"%s\": check host and port", m->node, pname(p));
                peer_down(p, why);
                return -EPROTO;
        }
        if (strcmp(m->to, p->conf->name) != 0) {
                snprintf(why, sizeof(why), "answered as if we were \"%s\"", m->to);
                peer_down(p, why);
                return -EPROTO;
        }
        /* Their clock against the midpoint of our HELLO's round trip. */
        skew_ms = ((int64_t)m->clock_ns - (int64_t)(p->hello_ns / 2 + now / 2)) / 1000000;
        if ((uint64_t)(skew_ms < 0 ? -skew_ms : skew_ms) > p->conf->clock_skew_warn_ms)
                log_warn("peer \"%s\": clock differs from ours by %lld ms (over clock_skew_warn): versions are "
                         "mtimes, so keep clocks in sync (NTP)", pname(p), (long long)skew_ms);
        p->state = PEER_INV;
        peer_start_catchup(p);
        return 0;
}

void peer_on_ack(struct peer *p, const struct proto_msg *m) {
        struct node_stats *st = &p->node->stats[p->idx];
        struct ent *e = node_get(p->node, m->name);
        struct ent_peer *ep;

        if (p->in_flight > 0) {
                p->in_flight--;
                p->fl_head = (p->fl_head + 1) % PEER_WINDOW;
        }
        if (!e)
                return;
        ep = &e->peer[p->idx];
        switch (m->status) {
        case PROTO_ST_OK:
                ep->busy_tries = 0;
                st->applied++;
                if (p->apply_error && strcmp(p->apply_error_name, m->name) == 0)
                        p->last_error[0] = 0;   /* the file that failed went through */
                p->apply_error = false;
                ep->has = m->ver;
                ep->has_kind = m->kind;
                break;
        case PROTO_ST_STALE:
                st->conflicts++;
                ep->has = m->ver;
                ep->has_kind = m->kind;
                log_info("peer \"%s\": \"%s\": it holds a newer %s; ours not applied", pname(p), m->name,
                         m->kind == PROTO_KIND_FILE ? "version" : "delete");
                break;
        case PROTO_ST_NEED_FULL:
                ep->has_kind = ENT_NONE;
                ep->full = true;
                node_mark_dirty(p->node, e, p->idx);
                break;
        case PROTO_ST_BUSY:
                /* Nothing changed there: it still holds the delta basis, so
                 * the retry stays a delta (a wrong guess costs one NEED_FULL).
                 * Back off while a long PHP request holds the lock. */
                ep->has_kind = e->sig ? PROTO_KIND_FILE : ENT_NONE;
                ep->has = (struct proto_ver){ 0, e->sig_hash };
                node_delay(p->node, e, p->idx, PEER_BUSY_RETRY_MS << (ep->busy_tries < 7 ? ep->busy_tries : 7));
                if (ep->busy_tries < 255)
                        ep->busy_tries++;
                break;
        case PROTO_ST_RETRY:
                st->errors++;
                ep->has_kind = ENT_NONE;
                snprintf(p->last_error, sizeof(p->last_error),
                         "\"%s\" could not be applied there, retrying (its log says why: disk full?)", m->name);
                snprintf(p->apply_error_name, sizeof(p->apply_error_name), "%s", m->name);
                p->apply_error = true;
                node_delay(p->node, e, p->idx, PEER_RETRY_MS);
                break;
        default:
                st->errors++;
                st->rejected++;
                snprintf(p->last_error, sizeof(p->last_error), "\"%s\" refused there", m->name);
                log_warn("peer \"%s\": \"%s\" refused (%s)", pname(p), m->name, proto_status_name(m->status));
                break;
        }
}

