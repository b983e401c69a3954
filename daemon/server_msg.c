/* What a socket connection's frames mean (docs/DESIGN.md "Handshake",
 * "Inbound connections"): RELAY or STATUS_REQ first, then HELLO, then a
 * peer's changes, PINGs and inventory requests. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "daemon/server_int.h"
#include "daemon/status.h"
#include "lib/conf.h"
#include "proto/msg.h"

/* This node's inventory, at most one at a time per connection, and per
 * peer one a second after a burst of SRV_INV_BURST (docs/DESIGN.md
 * "Inbound connections"): a request while one is still unwritten, or over
 * the rate, is remembered and answered by one fresh inventory once both
 * allow it (conn_write, the tick). Building one costs a look at every file,
 * and a peer key can reconnect as fast as sshd lets it. The burst lets a
 * --full-sync beside its own daemon (both are that peer here, each new
 * HELLO replacing the other's connection) get its inventory at once. */
void server_send_inventory(struct server_conn *c) {
        struct server_peer *sp = &c->srv->peer[c->idx];
        uint64_t now = loop_clock_ms();
        uint64_t tat = sp->inv_tat_ms > now ? sp->inv_tat_ms : now;

        if (c->written < c->inv_end || tat - now > (uint64_t)(SRV_INV_BURST - 1) * SRV_INV_GAP_MS) {
                c->inv_again = true;
                return;
        }
        c->inv_again = false;
        sp->inv_tat_ms = tat + SRV_INV_GAP_MS;
        node_inv_encode(c->srv->node, &c->out);
        c->inv_end = c->written + server_unwritten(c);
}

/* A peer's connect lines, at most one per SRV_NOTE_MS per peer: its key
 * may reconnect as fast as sshd lets it. */
static bool peer_note(struct server_conn *c) {
        uint64_t quiet;

        if (!server_rate_ok(&c->srv->peer[c->idx].lines, &quiet))
                return false;
        if (quiet)
                log_info("peer \"%s\": %llu more connections to us in the last %d s",
                         c->srv->conf->peers[c->idx].name, (unsigned long long)quiet, SRV_NOTE_MS / 1000);
        return true;
}

static int on_hello(struct server_conn *c, const struct proto_msg *m) {
        const struct conf *conf = c->srv->conf;
        const struct conf_peer *cp = conf_peer_find(conf, m->node);
        struct proto_msg reply = { .type = PROTO_HELLO, .version = PROTO_VERSION };
        char why[300];
        bool noted;

        if (!cp) {
                snprintf(why, sizeof(why), "\"%s\" is not a peer in %s", m->node, conf->path);
                return server_refuse(c, why);
        }
        if (c->from[0] && strcmp(c->from, m->node) != 0) {
                snprintf(why, sizeof(why), "this key may only be used by \"%s\", not \"%s\"", c->from, m->node);
                return server_refuse(c, why);
        }
        if (strcmp(m->to, conf->name) != 0) {
                snprintf(why, sizeof(why), "this is node \"%s\", not \"%s\"", conf->name, m->to);
                return server_refuse(c, why);
        }
        c->idx = (size_t)(cp - conf->peers);
        noted = peer_note(c);
        /* One live connection per peer, in the peer's own slot: a new one
         * means the old is dead (a partition the old relay has not noticed
         * yet). */
        for (struct server_conn *o = c->srv->conns; o; o = o->next) {
                if (o != c && !o->dead && o->pool == P_PEER && o->idx == c->idx) {
                        if (noted)
                                log_info("peer \"%s\": a new connection replaces an older one", m->node);
                        server_conn_close(o);
                }
        }
        server_admit(c, P_PEER, SIZE_MAX);
        c->state = C_PEER;
        reply.clock_ns = loop_realtime_ns();
        snprintf(reply.node, sizeof(reply.node), "%s", conf->name);
        snprintf(reply.to, sizeof(reply.to), "%s", m->node);
        (void)proto_msg_encode(&c->out, &reply);
        server_send_inventory(c);
        if (noted)
                log_info("peer \"%s\": connected to us", m->node);
        if (c->srv->peers)
                peer_kick(c->srv->peers[c->idx]);
        return 0;
}

/* The relay hands over its stdin and stdout (docs/DESIGN.md "Connections"):
 * they came with this frame, from a client that passed the socket's
 * credential check; the HELLO that follows on them is held to the RELAY's
 * --from as ever. Only byte streams are taken: a pipe or socket from sshd,
 * never a regular file or a device, whoever in the socket's group passes
 * it. conn_pump switches once this frame is done. */
static int on_handoff(struct server_conn *c) {
        int r;

        if (c->n_fds != FDPASS_MAX) {
                server_conn_drop_fds(c);
                return server_refuse(c, "HANDOFF without its two fds (stdin, stdout)");
        }
        if ((r = fdpass_stream_ok(c->fds[0], false)) < 0 || (r = fdpass_stream_ok(c->fds[1], true)) < 0) {
                server_conn_drop_fds(c);
                return server_refuse(c, r == -EINVAL ? "HANDOFF of an fd that is not a pipe or a socket"
                                                     : "HANDOFF of an fd not open for its direction");
        }
        c->handoff_now = true;
        return 0;
}

static int on_status_req(struct server_conn *c, const struct proto_msg *m) {
        struct proto_msg reply = { .type = PROTO_STATUS };
        struct proto_wr text;

        server_admit(c, P_CLI, SRV_CLI_MAX);
        proto_wr_init(&text);
        (void)status_render(c->srv->node, c->srv->peers, m->kind, &text);
        reply.data = text.buf;
        reply.data_len = text.len;
        (void)proto_msg_encode(&c->out, &reply);
        proto_wr_free(&text);
        c->state = C_CLOSING;
        c->since_ms = loop_now_ms(c->srv->loop);
        return -ECONNABORTED;
}

int server_msg(struct server_conn *c, const struct proto_msg *m) {
        struct proto_msg reply = { 0 };
        char why[128];

        switch (c->state) {
        case C_NEW:
                if (m->type == PROTO_RELAY) {
                        snprintf(c->from, sizeof(c->from), "%s", m->node);
                        server_admit(c, P_RELAY, SRV_RELAY_MAX);
                        c->state = C_SERVE;
                        return 0;
                }
                if (m->type == PROTO_STATUS_REQ && !c->srv->no_status)
                        return on_status_req(c, m);
                break;
        case C_SERVE:
                if (m->type == PROTO_HELLO)
                        return on_hello(c, m);
                if (m->type == PROTO_HANDOFF && !c->handed)
                        return on_handoff(c);
                break;
        case C_PEER:
                switch (m->type) {
                case PROTO_FILE:
                case PROTO_DELTA:
                case PROTO_TOUCH:
                case PROTO_DELETE:
                        node_recv(c->srv->node, c->idx, m, &reply);
                        (void)proto_msg_encode(&c->out, &reply);
                        return 0;
                case PROTO_INV_REQ:
                        server_send_inventory(c);
                        return 0;
                case PROTO_PING:
                        reply.type = PROTO_PONG;
                        reply.seq = m->seq;
                        reply.echo_ns = m->clock_ns;
                        reply.clock_ns = loop_realtime_ns();
                        (void)proto_msg_encode(&c->out, &reply);
                        return 0;
                case PROTO_ERROR: {
                        char clean[201];

                        log_warn("peer \"%s\": says: %s", server_who(c), log_clean(clean, sizeof(clean), m->data, m->data_len));
                        server_conn_close(c);
                        return -ECONNABORTED;
                }
                default:
                        break;
                }
                break;
        case C_CLOSING:
                return -ECONNABORTED;
        }
        snprintf(why, sizeof(why), "unexpected %s frame", proto_type_name(m->type));
        return server_refuse(c, why);
}
