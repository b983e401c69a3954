/* Per-peer dirty sets and delays (DESIGN.md "Catch-up"): one entry per file
 * at most, so a burst is one transfer and a peer that is down costs memory
 * bounded by the number of sessions. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "daemon/log.h"
#include "daemon/loop.h"

int64_t node_on_delay_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        uint64_t now = loop_clock_ms(), next = 0;

        (void)l;
        for (size_t i = 0; i < n->n_peers; i++) {
                size_t k = 0;

                for (size_t j = 0; j < n->n_delay[i]; j++) {
                        struct node_delay d = n->delay[i][j];

                        if (d.due_ms <= now) {
                                d.e->peer[i].delayed = false;
                                node_mark_dirty(n, d.e, i);
                                continue;
                        }
                        if (!next || d.due_ms - now < next)
                                next = d.due_ms - now;
                        n->delay[i][k++] = d;
                }
                n->n_delay[i] = k;
        }
        return next ? (int64_t)next : LOOP_TIMER_STOP;
}

void node_mark_dirty(struct node *n, struct ent *e, size_t idx) {
        struct ent_peer *ep = &e->peer[idx];

        if (ep->dirty || ep->delayed)
                return;
        if (!ep->queued) {
                if (node_vec_push(&n->dirty[idx], e) < 0) {
                        /* Out of memory: catch-up on the next connect finds it. */
                        log_error("\"%s\": out of memory queueing for a peer; left to catch-up", e->name);
                        return;
                }
                ep->queued = true;
        }
        ep->dirty = true;
        n->n_dirty[idx]++;
}

void node_clear_dirty(struct node *n, struct ent *e, size_t idx) {
        /* Stays in the vector (queued) until node_next_dirty skips it. */
        if (e->peer[idx].dirty) {
                e->peer[idx].dirty = false;
                n->n_dirty[idx]--;
        }
}

void node_mark_all(struct node *n, struct ent *e) {
        for (size_t i = 0; i < n->n_peers; i++)
                node_mark_dirty(n, e, i);
}

void node_delay(struct node *n, struct ent *e, size_t idx, uint64_t ms) {
        struct node_delay *d;

        if (e->peer[idx].delayed)
                return;
        if (e->peer[idx].dirty)
                return;   /* already going out again */
        if (n->n_delay[idx] == n->cap_delay[idx]) {
                size_t cap = n->cap_delay[idx] ? n->cap_delay[idx] * 2 : 16;

                d = realloc(n->delay[idx], cap * sizeof(*d));
                if (!d) {
                        node_mark_dirty(n, e, idx);
                        return;
                }
                n->delay[idx] = d;
                n->cap_delay[idx] = cap;
        }
        n->delay[idx][n->n_delay[idx]++] = (struct node_delay){ e, loop_clock_ms() + ms };
        e->peer[idx].delayed = true;
        loop_timer_arm_sooner(n->loop, n->delay_timer, ms);
}

struct ent *node_next_dirty(struct node *n, size_t idx) {
        struct ent *e;

        while ((e = node_vec_pop(&n->dirty[idx]))) {
                e->peer[idx].queued = false;
                if (e->peer[idx].dirty)
                        break;
        }
        if (e) {
                e->peer[idx].dirty = false;
                n->n_dirty[idx]--;
        }
        return e;
}

size_t node_pending(const struct node *n, size_t idx) {
        return n->n_dirty[idx] + n->n_delay[idx];
}
