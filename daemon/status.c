#include "daemon/status.h"

#include <inttypes.h>
#include <stdio.h>

#include "daemon/node.h"
#include "daemon/peer.h"
#include "proto/buf.h"

static void put_json_str(struct proto_wr *wr, const char *s) {
        proto_put_u8(wr, '"');
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '"' || c == '\\')
                        proto_put_fmt(wr, "\\%c", c);
                else if (c < 0x20)
                        proto_put_fmt(wr, "\\u%04x", c);
                else
                        proto_put_u8(wr, c);
        }
        proto_put_u8(wr, '"');
}

static const char *state_word(const struct peer *p) {
        switch (peer_state(p)) {
        case PEER_READY: return "connected";
        case PEER_DOWN: return "down";
        default: return "connecting";
        }
}

static void render_json(struct node *n, struct peer *const *peers, struct proto_wr *wr) {
        proto_put_fmt(wr, "{\"node\": ");
        put_json_str(wr, node_conf(n)->name);
        proto_put_fmt(wr, ", \"sessions\": %zu, \"tombstones\": %zu, \"skipped\": %zu, \"ready\": %s",
                      node_n_files(n), node_n_tombs(n), node_n_skipped(n), node_ready(n) ? "true" : "false");
        proto_put_fmt(wr, ", \"unreadable\": %zu, \"unreadable_total\": %" PRIu64 ", \"lock_retries\": %" PRIu64
                      ", \"unseen_tombstones\": %zu, \"unseen_forgotten\": %" PRIu64 ", \"peers\": [",
                      node_n_unreadable(n), node_unreadable_total(n), node_lock_retries_total(n), node_n_unseen(n),
                      node_unseen_forgotten_total(n));
        for (size_t i = 0; i < node_conf(n)->n_peers; i++) {
                const struct peer *p = peers[i];
                const struct node_stats *st = node_stats(n, i);
                char why[96];

                proto_put_fmt(wr, "%s{\"name\": ", i ? ", " : "");
                put_json_str(wr, node_conf(n)->peers[i].name);
                proto_put_fmt(wr, ", \"connected\": %s, \"pending\": %zu, \"lag_ms\": %" PRIu64 ", \"sent\": %" PRIu64
                    ", \"applied\": %" PRIu64 ", \"bytes_sent\": %" PRIu64 ", \"bytes_full\": %" PRIu64
                    ", \"conflicts\": %" PRIu64 ", \"refused_new\": %" PRIu64 ", \"last_error\": ",
                    peer_state(p) == PEER_READY ? "true" : "false", node_pending(n, i) + peer_in_flight(p),
                    peer_lag_ms(p), st->sent, st->applied, st->bytes_sent, st->bytes_full, st->conflicts,
                    st->refused_new);
                if (peer_last_error(p)[0])
                        put_json_str(wr, peer_last_error(p));
                else
                        proto_put_fmt(wr, "null");
                proto_put_fmt(wr, ", \"catchup\": ");
                put_json_str(wr, node_ready_why(n, i, why, sizeof(why)));
                proto_put_fmt(wr, "}");
        }
        proto_put_fmt(wr, "]}\n");
}

/* "ready", or "not ready: web2 receiving: 12 of 500 to go; web3 not
 * compared yet": what --wait-ready prints and the text status shows. */
static void render_ready(struct node *n, struct proto_wr *wr) {
        const char *sep = ": ";
        char why[96];

        if (node_ready(n)) {
                proto_put_fmt(wr, "ready\n");
                return;
        }
        proto_put_fmt(wr, "not ready");
        for (size_t i = 0; i < node_conf(n)->n_peers; i++) {
                if (node_ready_peer_done(n, i))
                        continue;
                proto_put_fmt(wr, "%s%s %s", sep, node_conf(n)->peers[i].name, node_ready_why(n, i, why, sizeof(why)));
                sep = "; ";
        }
        proto_put_fmt(wr, "\n");
}

static void render_text(struct node *n, struct peer *const *peers, struct proto_wr *wr) {
        proto_put_fmt(wr, "node %s: %zu sessions, %zu tombstones", node_conf(n)->name, node_n_files(n), node_n_tombs(n));
        if (node_n_skipped(n) > 0)
                proto_put_fmt(wr, ", %zu files skipped (not PHP's own: see the log)", node_n_skipped(n));
        if (node_n_unreadable(n) > 0)
                proto_put_fmt(wr, ", %zu files unreadable (see the log)", node_n_unreadable(n));
        proto_put_fmt(wr, "\n");
        render_ready(n, wr);
        if (node_conf(n)->n_peers == 0) {
                proto_put_fmt(wr, "no peers configured\n");
                return;
        }
        proto_put_fmt(wr, "%-16s %-10s %8s %8s %9s %9s %12s %7s %9s  %s\n", "PEER", "STATE", "PENDING", "LAG_MS", "SENT",
            "APPLIED", "BYTES_SENT", "SAVED", "CONFLICTS", "LAST_ERROR");
        for (size_t i = 0; i < node_conf(n)->n_peers; i++) {
                const struct peer *p = peers[i];
                const struct node_stats *st = node_stats(n, i);
                char saved[16] = "-";

                if (st->bytes_full > 0)
                        snprintf(saved, sizeof(saved), "%.1f%%",
                                 100.0 * (1.0 - (double)st->bytes_sent / (double)st->bytes_full));
                proto_put_fmt(wr, "%-16s %-10s %8zu %8" PRIu64 " %9" PRIu64 " %9" PRIu64 " %12" PRIu64 " %7s %9" PRIu64 "  %s\n",
                    node_conf(n)->peers[i].name, state_word(p), node_pending(n, i) + peer_in_flight(p), peer_lag_ms(p),
                    st->sent, st->applied, st->bytes_sent, saved, st->conflicts,
                    peer_last_error(p)[0] ? peer_last_error(p) : "-");
        }
}

int status_render(struct node *n, struct peer *const *peers, uint8_t format, struct proto_wr *wr) {
        if (format == PROTO_STATUS_JSON)
                render_json(n, peers, wr);
        else if (format == PROTO_STATUS_READY)
                render_ready(n, wr);
        else
                render_text(n, peers, wr);
        return proto_wr_error(wr);
}
