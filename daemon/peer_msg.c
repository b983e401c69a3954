/* What the pushing side does with the peer's answers (docs/DESIGN.md
 * "Catch-up and full sync", "Versions, conflicts, deletes"): check its
 * HELLO and the clocks, feed its inventory to the node's catch-up, and act
 * on each ACK. Handlers return a verdict; peer.c makes every state
 * transition. */
#include "daemon/peer.h"
#include "daemon/peer_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "lib/sess.h"
#include "proto/msg.h"

int peer_msg_hello(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]) {
        int64_t skew_ms;
        uint64_t now = loop_realtime_ns();

        if (strcmp(m->node, peer_name(p)) != 0) {
                snprintf(why, PEER_WHY_MAX, "reached node \"%s\", not \"%s\": check host and port", m->node,
                         peer_name(p));
                return -EPROTO;
        }
        if (strcmp(m->to, p->conf->name) != 0) {
                snprintf(why, PEER_WHY_MAX, "answered as if we were \"%s\"", m->to);
                return -EPROTO;
        }
        /* Their clock against the midpoint of our HELLO's round trip; the
         * difference taken unsigned: their clock_ns may be anything. */
        skew_ms = (int64_t)(m->clock_ns - (p->hello_ns / 2 + now / 2)) / 1000000;
        if ((uint64_t)(skew_ms < 0 ? -skew_ms : skew_ms) > p->conf->clock_skew_warn_ms)
                log_warn("peer \"%s\": clock differs from ours by %lld ms (over clock_skew_warn): versions are "
                         "mtimes, so keep clocks in sync (NTP)", peer_name(p), (long long)skew_ms);
        return 0;
}

int peer_msg_inv(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]) {
        struct proto_rd rd;
        struct proto_inv_ent ie;
        uint32_t left = m->count;
        int r;

        /* An inventory ends with INV_END, but a peer may never send it: each
         * entry costs a lookup, and while this node is not ready a name only
         * the peer holds costs an entry in the table (docs/DESIGN.md
         * "Bounds"). */
        p->inv_entries += m->count;
        if (p->inv_entries > PEER_INV_ENTRIES_MAX) {
                snprintf(why, PEER_WHY_MAX, "inventory of more than %u entries", PEER_INV_ENTRIES_MAX);
                return -EMSGSIZE;
        }
        proto_rd_init(&rd, m->data, m->data_len);
        while ((r = proto_inv_next(&rd, &left, &ie)) > 0)
                node_catchup_entry(p->node, p->idx, &ie);
        if (r < 0) {
                snprintf(why, PEER_WHY_MAX, "malformed inventory");
                return r;
        }
        return 0;
}

size_t peer_msg_inv_end(struct peer *p) {
        return node_catchup_finish(p->node, p->idx);
}

int peer_msg_ack(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]) {
        char tag[SESS_TAG_LEN];   /* a session id is a bearer token: logs and status show its tag */

        if (p->in_flight == 0 || m->ack_seq != p->sent_seq[p->fl_head]) {
                if (p->in_flight == 0)
                        snprintf(why, PEER_WHY_MAX, "ACK for frame %u, but none is in flight", m->ack_seq);
                else
                        snprintf(why, PEER_WHY_MAX, "ACK for frame %u, expected %u (acks come in order)",
                                 m->ack_seq, p->sent_seq[p->fl_head]);
                return -EPROTO;
        }
        p->in_flight--;
        p->fl_head = (p->fl_head + 1) % PEER_WINDOW;
        switch (node_ack(p->node, p->idx, m)) {
        case NODE_ACK_DONE:
                if (m->status == PROTO_ST_OK && p->apply_error && strcmp(p->apply_error_name, m->name) == 0) {
                        p->last_error[0] = 0;   /* the file that failed went through */
                        p->apply_error = false;
                }
                break;
        case NODE_ACK_STALE:
                log_info("peer \"%s\": session %s: it holds a newer %s; ours not applied", peer_name(p), sess_tag(m->name, tag),
                         m->kind == PROTO_KIND_FILE ? "version" : "delete");
                break;
        case NODE_ACK_RETRY:
                snprintf(p->last_error, sizeof(p->last_error),
                         "session %s could not be applied there, retrying (its log says why: disk full?)", sess_tag(m->name, tag));
                snprintf(p->apply_error_name, sizeof(p->apply_error_name), "%s", m->name);
                p->apply_error = true;
                break;
        case NODE_ACK_REFUSED:
                snprintf(p->last_error, sizeof(p->last_error), "session %s refused there", sess_tag(m->name, tag));
                p->apply_error = false;   /* for good: no later OK clears it */
                log_warn("peer \"%s\": session %s refused (%s)", peer_name(p), sess_tag(m->name, tag), proto_status_name(m->status));
                break;
        case NODE_ACK_UNKNOWN:
                break;
        }
        return 0;
}
