/* Readiness (docs/DESIGN.md "Readiness"): a node that comes back serves no
 * user before it holds what its peers held when it returned. When this
 * node's catch-up with a peer compares inventories, every name the peer
 * holds in a state that beats ours (ver_state_beats, the rule by which the
 * peer will push it) is wanted from that peer; it stops being wanted when
 * that peer's frame for it has been handled (applied or refused) or our
 * own state no longer loses to it. The node is ready, for good, when every
 * peer is done or excluded: a peer that makes no progress (no comparison,
 * no arrival) for ready_timeout cannot hold readiness forever. Calls no
 * other node file. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <stdio.h>

#include "daemon/log.h"
#include "daemon/loop.h"

static bool tracking(const struct node *n, size_t idx) {
        uint8_t cu = n->peer[idx].catchup;

        return !n->ready && (cu == NODE_CU_WAITING || cu == NODE_CU_RECEIVING);
}

static void done_if_empty(struct node *n, size_t idx) {
        struct node_peer *np = &n->peer[idx];

        if (np->catchup == NODE_CU_RECEIVING && np->n_wanted == 0) {
                np->catchup = NODE_CU_DONE;
                log_info("peer \"%s\": caught up (%zu wanted at the comparison)", n->conf->peers[idx].name, np->n_wanted_total);
        }
}

static void unwant(struct node *n, struct node_ent *e, size_t idx) {
        struct node_peer *np = &n->peer[idx];

        e->peer[idx].wanted = false;
        np->n_wanted--;
        np->progress_ms = loop_clock_ms();
        done_if_empty(n, idx);
}

void node_ready_want(struct node *n, struct node_ent *e, size_t idx, bool want) {
        struct node_ent_peer *ep = &e->peer[idx];

        if (ep->wanted == want || (want && !tracking(n, idx)))
                return;
        if (!want) {
                unwant(n, e, idx);
                return;
        }
        ep->wanted = true;
        n->peer[idx].n_wanted++;
        n->peer[idx].n_wanted_total++;
}

void node_ready_seen(struct node *n, struct node_ent *e, size_t from_peer) {
        for (size_t i = 0; i < n->n_peers; i++) {
                struct node_ent_peer *ep = &e->peer[i];

                if (ep->wanted && (i == from_peer || !ver_state_beats(ep->has_kind, &ep->has, e->kind, &e->ver)))
                        unwant(n, e, i);
        }
}

void node_ready_begin(struct node *n, size_t idx) {
        if (tracking(n, idx))
                n->peer[idx].n_wanted_total = 0;
}

void node_ready_compared(struct node *n, size_t idx) {
        struct node_peer *np = &n->peer[idx];

        if (!tracking(n, idx))
                return;
        np->progress_ms = loop_clock_ms();
        np->catchup = NODE_CU_RECEIVING;
        if (np->n_wanted > 0)
                log_info("peer \"%s\": compared; %zu to receive before this node is ready", n->conf->peers[idx].name,
                         np->n_wanted);
        done_if_empty(n, idx);
}

bool node_ready(struct node *n) {
        uint64_t now = loop_clock_ms(), timeout = n->conf->ready_timeout_ms;
        size_t done = 0, excluded = 0;

        if (n->ready)
                return true;
        for (size_t i = 0; i < n->n_peers; i++) {
                struct node_peer *np = &n->peer[i];
                uint64_t since = np->progress_ms > n->start_ms ? np->progress_ms : n->start_ms;

                if (tracking(n, i) && now - since >= timeout) {
                        log_warn("peer \"%s\": %s for %.1f s; not waited for (ready_timeout)", n->conf->peers[i].name,
                                 np->catchup == NODE_CU_WAITING ? "not reached" : "nothing arrived",
                                 (double)timeout / 1000.0);
                        np->catchup = NODE_CU_EXCLUDED;
                }
                done += np->catchup == NODE_CU_DONE;
                excluded += np->catchup == NODE_CU_EXCLUDED;
        }
        if (done + excluded < n->n_peers)
                return false;
        n->ready = true;
        log_info("ready: caught up with %zu peer(s), %zu not waited for, %llu ms after start", done, excluded,
                 (unsigned long long)(now - n->start_ms));
        return true;
}

bool node_ready_peer_done(const struct node *n, size_t idx) {
        return n->peer[idx].catchup == NODE_CU_DONE;
}

size_t node_changed_at_start(const struct node *n) {
        return n->changed_at_start;
}

const char *node_ready_why(const struct node *n, size_t idx, char *buf, size_t size) {
        const struct node_peer *np = &n->peer[idx];

        switch (np->catchup) {
        case NODE_CU_WAITING:
                snprintf(buf, size, n->ready ? "done" : "not compared yet");
                break;
        case NODE_CU_RECEIVING:
                snprintf(buf, size, n->ready ? "done" : "receiving: %zu of %zu to go", np->n_wanted, np->n_wanted_total);
                break;
        case NODE_CU_DONE:
                snprintf(buf, size, "done");
                break;
        default:
                snprintf(buf, size, "not waited for (no progress for ready_timeout)");
                break;
        }
        return buf;
}
