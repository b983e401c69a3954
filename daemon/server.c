#include "daemon/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer.h"
#include "daemon/sock.h"
#include "daemon/status.h"
#include "daemon/wire.h"
#include "proto/msg.h"

#define SRV_MAX_CONNS 128
#define SRV_IN_MAX (PROTO_FRAME_MAX + (64u << 10))
#define SRV_OUT_HIGH (8u << 20)         /* stop reading while replies back up */
#define SRV_HANDSHAKE_MS 15000          /* SERVE and HELLO must come this soon */
#define SRV_SILENCE_MS 30000            /* the pusher pings every 5 s */
#define SRV_TICK_MS 5000

enum conn_state { C_NEW, C_SERVE, C_PEER, C_CLOSING };

struct conn {
        struct server *srv;
        int fd;
        struct loop_fd *reg;
        enum conn_state state;
        struct proto_wr in, out;
        size_t ok_len;                  /* bytes of out that may be written */
        char from[PROTO_NODE_MAX + 1];  /* --serve --from, "" = any peer */
        size_t idx;                     /* peer index once HELLO is accepted */
        uint64_t since_ms, last_rx_ms;
        bool dead;
        struct conn *next;
};

struct server {
        struct node *node;
        gid_t gid;                      /* the socket's group: its members may connect */
        uint64_t refused_ms;            /* refusals are logged at most once a minute, */
        uint64_t refused_quiet;         /* with how many went unlogged since */
        const struct conf *conf;
        struct peer *const *peers;      /* the daemon's, for --status */
        struct loop *loop;
        int fd;
        struct loop_fd *reg;
        struct conn *conns;
        size_t n_conns;
        struct loop_timer *tick;
};

static void conn_close(struct conn *c) {
        if (c->dead)
                return;
        c->dead = true;
        loop_del_fd(c->srv->loop, c->reg);
        c->reg = NULL;
        close(c->fd);
        c->fd = -1;
}

static const char *who(const struct conn *c) {
        if (c->state == C_PEER)
                return c->srv->conf->peers[c->idx].name;
        return c->from[0] ? c->from : "?";
}

/* Tell the other side why, then close once that is written. */
static int refuse(struct conn *c, const char *why) {
        struct proto_msg m = { .type = PROTO_ERROR };

        log_warn("inbound connection from peer \"%s\": %s; closing it", who(c), why);
        m.data = (const uint8_t *)why;
        m.data_len = strlen(why);
        (void)proto_msg_encode(&c->out, &m);
        c->state = C_CLOSING;
        return -ECONNABORTED;
}

static int on_hello(struct conn *c, const struct proto_msg *m) {
        const struct conf *conf = c->srv->conf;
        const struct conf_peer *cp = conf_peer_find(conf, m->node);
        struct proto_msg reply = { .type = PROTO_HELLO, .version = PROTO_VERSION };
        char why[300];

        if (!cp) {
                snprintf(why, sizeof(why), "\"%s\" is not a peer in %s", m->node, conf->path);
                return refuse(c, why);
        }
        if (c->from[0] && strcmp(c->from, m->node) != 0) {
                snprintf(why, sizeof(why), "this key may only be used by \"%s\", not \"%s\"", c->from, m->node);
                return refuse(c, why);
        }
        if (strcmp(m->to, conf->name) != 0) {
                snprintf(why, sizeof(why), "this is node \"%s\", not \"%s\"", conf->name, m->to);
                return refuse(c, why);
        }
        c->idx = (size_t)(cp - conf->peers);
        /* One live connection per peer: a new one means the old is dead
         * (a partition the old relay has not noticed yet). */
        for (struct conn *o = c->srv->conns; o; o = o->next) {
                if (o != c && !o->dead && o->state == C_PEER && o->idx == c->idx) {
                        log_info("peer \"%s\": a new connection replaces an older one", m->node);
                        conn_close(o);
                }
        }
        c->state = C_PEER;
        reply.clock_ns = loop_realtime_ns();
        snprintf(reply.node, sizeof(reply.node), "%s", conf->name);
        snprintf(reply.to, sizeof(reply.to), "%s", m->node);
        (void)proto_msg_encode(&c->out, &reply);
        node_inv_encode(c->srv->node, &c->out);
        log_info("peer \"%s\": connected to us", m->node);
        if (c->srv->peers)
                peer_kick(c->srv->peers[c->idx]);
        return 0;
}

static int on_msg(void *ctx, const struct proto_msg *m) {
        struct conn *c = ctx;
        struct proto_msg reply = { 0 };
        char why[128];

        switch (c->state) {
        case C_NEW:
                if (m->type == PROTO_RELAY) {
                        snprintf(c->from, sizeof(c->from), "%s", m->node);
                        c->state = C_SERVE;
                        return 0;
                }
                if (m->type == PROTO_STATUS_REQ && c->srv->peers) {   /* a stand-in has no status */
                        struct proto_wr text;

                        proto_wr_init(&text);
                        (void)status_render(c->srv->node, c->srv->peers, m->kind, &text);
                        reply.type = PROTO_STATUS;
                        reply.data = text.buf;
                        reply.data_len = text.len;
                        (void)proto_msg_encode(&c->out, &reply);
                        proto_wr_free(&text);
                        c->state = C_CLOSING;
                        return -ECONNABORTED;
                }
                break;
        case C_SERVE:
                if (m->type == PROTO_HELLO)
                        return on_hello(c, m);
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
                        node_inv_encode(c->srv->node, &c->out);
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

                        log_warn("peer \"%s\": says: %s", who(c), log_clean(clean, sizeof(clean), m->data, m->data_len));
                        conn_close(c);
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
        return refuse(c, why);
}

static void conn_update_events(struct conn *c) {
        uint32_t ev = 0;

        if (c->dead)
                return;
        if (c->state != C_CLOSING && c->out.len < SRV_OUT_HIGH)
                ev |= EPOLLIN;
        if (c->ok_len > 0)
                ev |= EPOLLOUT;
        if (loop_mod_fd(c->srv->loop, c->reg, ev) < 0)
                conn_close(c);
}

static void conn_write(struct conn *c) {
        while (c->ok_len > 0 && !c->dead) {
                ssize_t n = send(c->fd, c->out.buf, c->ok_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                conn_close(c);
                        break;
                }
                proto_wr_consume(&c->out, (size_t)n);
                c->ok_len -= (size_t)n;
        }
        if (!c->dead && c->state == C_CLOSING && c->out.len == 0)
                conn_close(c);
        conn_update_events(c);
}

static void conn_read(struct conn *c) {
        const char *why = NULL;
        char buf[64 * 1024];
        int r;

        for (;;) {
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                conn_close(c);
                        return;
                }
                if (n == 0) {
                        if (c->state == C_PEER)
                                log_info("peer \"%s\": disconnected from us", who(c));
                        conn_close(c);
                        return;
                }
                c->last_rx_ms = loop_now_ms(c->srv->loop);
                proto_put_bytes(&c->in, buf, (size_t)n);
                if (proto_wr_error(&c->in) || c->in.len > SRV_IN_MAX) {
                        refuse(c, "input over the frame size limit");
                        return;
                }
                r = wire_dispatch(&c->in, on_msg, c, &why);
                if (why)
                        refuse(c, why);
                if (r < 0 || c->out.len >= SRV_OUT_HIGH)
                        return;
        }
}

static void on_conn(struct loop *l, uint32_t events, void *ctx) {
        struct conn *c = ctx;

        (void)l;
        if (events & EPOLLIN)
                conn_read(c);
        if (!c->dead && (events & EPOLLOUT))
                conn_write(c);
        if (!c->dead)
                conn_update_events(c);
}

/* A client the socket refuses is logged at most once a minute, with the
 * count of those that were not. */
static bool client_allowed(struct server *s, int fd) {
        struct ucred cr;
        uint64_t now;

        if (sock_client_allowed(fd, s->gid, &cr))
                return true;
        now = loop_clock_ms();
        if (s->refused_ms && now - s->refused_ms < 60000) {
                s->refused_quiet++;
                return false;
        }
        log_warn("socket: refused a client of uid %u (pid %d): not root, not sessyncd's user, not in the socket's "
                 "group (gid %u); %llu more refused since the last such line", (unsigned)cr.uid, (int)cr.pid,
                 (unsigned)s->gid, (unsigned long long)s->refused_quiet);
        s->refused_ms = now;
        s->refused_quiet = 0;
        return false;
}

static void on_accept(struct loop *l, uint32_t events, void *ctx) {
        struct server *s = ctx;

        (void)events;
        for (;;) {
                int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct conn *c;

                if (fd < 0)
                        return;
                if (!client_allowed(s, fd)) {
                        sock_refuse(fd);
                        close(fd);
                        continue;
                }
                if (s->n_conns >= SRV_MAX_CONNS) {
                        log_warn("too many connections on the socket; refusing one");
                        close(fd);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c || loop_add_fd(l, fd, EPOLLIN, on_conn, c, &c->reg) < 0) {
                        free(c);
                        close(fd);
                        continue;
                }
                c->srv = s;
                c->fd = fd;
                c->since_ms = c->last_rx_ms = loop_now_ms(l);
                proto_wr_init(&c->in);
                proto_wr_init(&c->out);
                c->next = s->conns;
                s->conns = c;
                s->n_conns++;
        }
}

static void conn_free(struct conn *c) {
        conn_close(c);
        proto_wr_free(&c->in);
        proto_wr_free(&c->out);
        free(c);
}

void server_flush(struct server *s) {
        struct conn **cp = &s->conns;

        while (*cp) {
                struct conn *c = *cp;

                if (!c->dead) {
                        c->ok_len = c->out.len;
                        conn_write(c);
                }
                if (c->dead) {
                        *cp = c->next;
                        s->n_conns--;
                        conn_free(c);
                } else {
                        cp = &c->next;
                }
        }
}

/* Close connections that never finished their handshake, and peers gone
 * silent: their relays can outlive a partition by hours (TCP keepalive). */
static int64_t on_tick(struct loop *l, void *ctx) {
        struct server *s = ctx;
        uint64_t now = loop_now_ms(l);

        for (struct conn *c = s->conns; c; c = c->next) {
                if (c->dead)
                        continue;
                if ((c->state == C_NEW || c->state == C_SERVE) && now - c->since_ms > SRV_HANDSHAKE_MS) {
                        log_warn("inbound connection: no handshake within %d s; closing it", SRV_HANDSHAKE_MS / 1000);
                        conn_close(c);
                } else if (c->state == C_PEER && now - c->last_rx_ms > SRV_SILENCE_MS) {
                        log_warn("peer \"%s\": silent for %d s; closing its connection to us", who(c),
                                 SRV_SILENCE_MS / 1000);
                        conn_close(c);
                }
        }
        return SRV_TICK_MS;
}

int server_new(struct node *n, struct loop *l, struct peer *const *peers, struct server **ret) {
        struct server *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->node = n;
        s->conf = node_conf(n);
        s->peers = peers;
        s->loop = l;
        s->fd = sock_bind(s->conf->socket, &s->gid);
        if (s->fd < 0) {
                r = s->fd;
                free(s);
                return r;
        }
        s->tick = loop_timer_new(s->loop, on_tick, s);
        r = s->tick ? loop_add_fd(s->loop, s->fd, EPOLLIN, on_accept, s, &s->reg) : -ENOMEM;
        if (r < 0) {
                loop_del_timer(s->loop, s->tick);
                close(s->fd);
                free(s);
                return r;
        }
        loop_timer_arm(s->loop, s->tick, SRV_TICK_MS);
        *ret = s;
        return 0;
}

void server_free(struct server *s) {
        if (!s)
                return;
        while (s->conns) {
                struct conn *c = s->conns;
                s->conns = c->next;
                conn_free(c);
        }
        loop_del_fd(s->loop, s->reg);
        loop_del_timer(s->loop, s->tick);
        close(s->fd);
        free(s);
}

size_t server_n_conns(const struct server *s) {
        return s->n_conns;
}
