/* A reload's new peer list (docs/DESIGN.md "Reload"): every per-peer slot of
 * the node, the peer's dirty set, delays, counters and readiness and each
 * entry's view of what the peer holds, moves to the peer's new index; a
 * removed peer's slots are dropped and a new peer starts empty (its catch-up
 * at connect fills them, as for a peer after an outage). All or nothing: the
 * arrays are allocated first, so a failure leaves the node as it was. Calls
 * no other node file. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "daemon/loop.h"

static void slot_init(struct node_ent_peer *ep) {
        memset(ep, 0, sizeof(*ep));
        ep->has_kind = VER_KIND_NONE;
}

int node_set_peers(struct node *n, const struct conf *c, const size_t *old_of_new) {
        size_t nn = c->n_peers, n_ents = HASH_COUNT(n->table), i = 0;
        struct node_ent_peer **slots = NULL;
        struct node_peer *peers = NULL;
        struct node_ent *e, *tmp;
        bool *kept = NULL;
        int r = -ENOMEM;

        peers = calloc(nn ? nn : 1, sizeof(*peers));
        kept = calloc(n->n_peers ? n->n_peers : 1, sizeof(*kept));
        slots = calloc(n_ents ? n_ents : 1, sizeof(*slots));
        if (!peers || !kept || !slots)
                goto out;
        for (i = 0; i < n_ents; i++)
                if (!(slots[i] = malloc((nn ? nn : 1) * sizeof(**slots))))
                        goto out;

        /* Nothing fails from here on. */
        for (size_t j = 0; j < nn; j++) {
                size_t o = old_of_new[j];

                if (o != NODE_NO_PEER) {
                        peers[j] = n->peer[o];   /* the vectors move with it */
                        kept[o] = true;
                } else {
                        peers[j].progress_ms = loop_clock_ms();   /* ready_timeout counts from now */
                }
        }
        for (size_t o = 0; o < n->n_peers; o++)
                if (!kept[o]) {
                        free(n->peer[o].dirty.v);
                        free(n->peer[o].delay);
                }
        i = 0;
        HASH_ITER(hh, n->table, e, tmp) {
                struct node_ent_peer *s = slots[i];

                slots[i++] = NULL;
                for (size_t j = 0; j < nn; j++) {
                        if (old_of_new[j] != NODE_NO_PEER)
                                s[j] = e->peer[old_of_new[j]];
                        else
                                slot_init(&s[j]);
                }
                if (e->peer != (struct node_ent_peer *)(e + 1))
                        free(e->peer);
                e->peer = s;
        }
        free(n->peer);
        n->peer = peers;
        peers = NULL;
        n->n_peers = nn;
        n->conf = c;
        r = 0;
out:
        for (size_t k = 0; slots && k < n_ents; k++)
                free(slots[k]);
        free(slots);
        free(kept);
        free(peers);
        return r;
}

void node_set_conf(struct node *n, const struct conf *c) {
        n->conf = c;
}
