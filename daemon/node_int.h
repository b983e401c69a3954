/* Internal to node.c, node_queue.c and node_check.c: the pieces of the
 * node object they share. */
#ifndef SESSYNC_DAEMON_NODE_INT_H
#define SESSYNC_DAEMON_NODE_INT_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/node.h"

struct loop;

/* Timer callbacks node_new registers. */
int64_t node_on_busy_timer(struct loop *l, void *ctx);
int64_t node_on_delay_timer(struct loop *l, void *ctx);

/* Change e's kind, keeping the file and tombstone counts right. */
void node_set_kind(struct node *n, struct ent *e, uint8_t kind);

/* A FIFO of entries: push at the end, pop from head; the consumed front is
 * reused before the array grows. */
static inline int node_vec_push(struct ent_vec *v, struct ent *e) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 64;
                struct ent **p;

                if (v->head > 0) {   /* reuse the consumed front before growing */
                        memmove(v->v, v->v + v->head, (v->n - v->head) * sizeof(*v->v));
                        v->n -= v->head;
                        v->head = 0;
                        if (v->n < v->cap)
                                goto room;
                }
                p = realloc(v->v, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                v->v = p;
                v->cap = cap;
        }
room:
        v->v[v->n++] = e;
        return 0;
}

static inline struct ent *node_vec_pop(struct ent_vec *v) {
        struct ent *e;

        if (v->head == v->n) {
                v->head = v->n = 0;
                return NULL;
        }
        e = v->v[v->head++];
        if (v->head == v->n)
                v->head = v->n = 0;
        return e;
}

#endif
