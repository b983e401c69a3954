/* Per-peer dirty sets and delays (docs/DESIGN.md "Catch-up and full
 * sync"): one entry per file at most, so a burst is one transfer and a peer
 * that is down costs memory bounded by the number of sessions. Calls no
 * other node file. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "daemon/log.h"
#include "daemon/loop.h"

static int64_t on_delay_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        uint64_t now = loop_clock_ms(), next = 0;

        (void)l;
        for (size_t i = 0; i < n->n_peers; i++) {
                struct node_peer *np = &n->peer[i];
                size_t k = 0;

                for (size_t j = 0; j < np->n_delay; j++) {
                        struct node_delay d = np->delay[j];

                        if (d.due_ms <= now) {
                                d.e->peer[i].delayed = false;
                                node_mark_dirty(n, d.e, i);
                                continue;
                        }
                        if (!next || d.due_ms - now < next)
                                next = d.due_ms - now;
                        np->delay[k++] = d;
                }
                np->n_delay = k;
        }
        return next ? (int64_t)next : LOOP_TIMER_STOP;
}

void node_mark_dirty(struct node *n, struct node_ent *e, size_t idx) {
        struct node_ent_peer *ep = &e->peer[idx];
        struct node_peer *np = &n->peer[idx];

        if (ep->dirty || ep->delayed)
                return;
        if (!ep->queued) {
                if (node_vec_push(&np->dirty, e) < 0) {
                        /* Out of memory: catch-up on the next connect finds it. */
                        log_error("session %s: out of memory queueing for a peer; left to catch-up", e->tag);
                        return;
                }
                ep->queued = true;
        }
        ep->dirty = true;
        np->n_dirty++;
}

void node_clear_dirty(struct node *n, struct node_ent *e, size_t idx) {
        /* Stays in the vector (queued) until node_next_dirty skips it. */
        if (e->peer[idx].dirty) {
                e->peer[idx].dirty = false;
                n->peer[idx].n_dirty--;
        }
}

void node_mark_all(struct node *n, struct node_ent *e) {
        for (size_t i = 0; i < n->n_peers; i++)
                node_mark_dirty(n, e, i);
}

void node_delay(struct node *n, struct node_ent *e, size_t idx, uint64_t ms) {
        struct node_peer *np = &n->peer[idx];
        struct node_delay *d;

        if (e->peer[idx].delayed)
                return;
        if (e->peer[idx].dirty)
                return;   /* already going out again */
        if (!n->delay_timer && !(n->delay_timer = loop_timer_new(n->loop, on_delay_timer, n))) {
                node_mark_dirty(n, e, idx);
                return;
        }
        if (np->n_delay == np->cap_delay) {
                size_t cap = np->cap_delay ? np->cap_delay * 2 : 16;

                d = realloc(np->delay, cap * sizeof(*d));
                if (!d) {
                        node_mark_dirty(n, e, idx);
                        return;
                }
                np->delay = d;
                np->cap_delay = cap;
        }
        np->delay[np->n_delay++] = (struct node_delay){ e, loop_clock_ms() + ms };
        e->peer[idx].delayed = true;
        loop_timer_arm_sooner(n->loop, n->delay_timer, ms);
}

struct node_ent *node_next_dirty(struct node *n, size_t idx) {
        struct node_peer *np = &n->peer[idx];
        struct node_ent *e;

        while ((e = node_vec_pop(&np->dirty))) {
                e->peer[idx].queued = false;
                if (e->peer[idx].dirty)
                        break;
        }
        if (e) {
                e->peer[idx].dirty = false;
                np->n_dirty--;
        }
        return e;
}
