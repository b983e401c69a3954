#include "daemon/server.h"

#include <errno.h>
#include <stdarg.h>
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

/* What one connection may make the daemon hold, and for how long
 * (docs/DESIGN.md "Bounds", "Inbound connections"). The pools are
 * separate so that no class of connection can crowd out another: a flood
 * of unclassified sockets neither takes a peer's slot nor keeps --status
 * out, and each configured peer has exactly one slot of its own. */
#define SRV_NEW_MAX 16          /* connected, no whole first frame yet */
#define SRV_RELAY_MAX 16        /* RELAY read, HELLO not yet */
#define SRV_CLI_MAX 8           /* STATUS_REQ answered, the answer not yet written */
#define SRV_SMALL_FRAME 4096    /* any frame before a HELLO is accepted (RELAY, HELLO, STATUS_REQ) */
#define SRV_SMALL_READ 4096     /* one recv() before a HELLO is accepted */
#define SRV_PEER_FRAME (PROTO_FRAME_MAX + 4)
#define SRV_PEER_READ (64u << 10)
#define SRV_OUT_HIGH (1u << 20) /* no frame is dispatched while more is unwritten */
#define SRV_SHARE_BYTES (256u << 10)   /* read per connection per callback, */
#define SRV_SHARE_FRAMES 256           /* and frames dispatched, then the loop goes on */
#define SRV_ACCEPT_BATCH 16
#define SRV_FIRST_MS 2000       /* a first frame comes at once from the relay and the CLI */
#define SRV_HELLO_MS 5000       /* the pusher's HELLO is on the channel before the relay starts */
#define SRV_CLOSING_MS 5000     /* an answer or ERROR not read by then is dropped */
#define SRV_SILENCE_MS 30000    /* the pusher pings every 5 s */
#define SRV_TICK_MS 1000
#define SRV_NOTE_MS 10000       /* unauthenticated events are logged at most this often */

enum conn_state { C_NEW, C_SERVE, C_PEER, C_CLOSING };
enum conn_pool { P_NONE, P_NEW, P_RELAY, P_CLI, P_PEER, P_N_ };

struct conn {
        struct server *srv;
        int fd;
        struct loop_fd *reg;
        enum conn_state state;
        enum conn_pool pool;            /* the slot it holds; kept while C_CLOSING */
        struct proto_wr in, out;
        size_t in_off;                  /* bytes of in already dispatched */
        size_t out_off;                 /* bytes of out already written */
        size_t ok_len;                  /* bytes of out, after out_off, that may be written */
        uint64_t written;               /* bytes written in all */
        uint64_t inv_end;               /* written reaches this once the last inventory is out */
        bool inv_again;                 /* an INV_REQ came while an inventory was still unwritten */
        bool more;                      /* yielded with frames left: the resume timer comes back */
        char from[PROTO_NODE_MAX + 1];  /* --serve --from, "" = any peer */
        size_t idx;                     /* peer index once HELLO is accepted */
        uint64_t since_ms;              /* accepted, or (C_CLOSING) its last answer made */
        uint64_t last_io_ms;
        bool pumping;                   /* in holds the frame being dispatched */
        bool dead;
        struct conn *next;
};

struct server {
        struct node *node;
        gid_t gid;                      /* the socket's group: its members may connect */
        uint64_t refused_ms;            /* refusals are logged at most once a minute, */
        uint64_t refused_quiet;         /* with how many went unlogged since */
        uint64_t note_ms;               /* the same for what unauthenticated clients cause */
        uint64_t note_quiet;
        const struct conf *conf;
        struct peer *const *peers;      /* the daemon's, for --status */
        struct loop *loop;
        int fd;
        struct loop_fd *reg;
        struct conn *conns;             /* newest first */
        size_t n_pool[P_N_];            /* live connections in each pool */
        struct loop_timer *tick, *resume;
};

static void conn_pump(struct conn *c);

/* A line about a client that has not shown it is a peer: at most one per
 * SRV_NOTE_MS, with the count of those not logged, so a flood of sockets
 * cannot flood the log. */
__attribute__((format(printf, 2, 3))) static void note(struct server *s, const char *fmt, ...) {
        uint64_t now = loop_clock_ms();
        char line[300];
        va_list ap;

        if (s->note_ms && now - s->note_ms < SRV_NOTE_MS) {
                s->note_quiet++;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        log_warn("%s (%llu more such events on the socket since the last such line)", line,
                 (unsigned long long)s->note_quiet);
        s->note_ms = now;
        s->note_quiet = 0;
}

static void conn_close(struct conn *c) {
        if (c->dead)
                return;
        c->dead = true;
        c->srv->n_pool[c->pool]--;
        loop_del_fd(c->srv->loop, c->reg);
        c->reg = NULL;
        close(c->fd);
        c->fd = -1;
        /* The memory goes now, not when the struct is reaped: a peer that
         * reconnects many times in one batch holds one inventory, not many.
         * in may hold the frame being dispatched; then conn_pump frees it. */
        proto_wr_free(&c->out);
        c->out_off = c->ok_len = 0;
        if (!c->pumping) {
                proto_wr_free(&c->in);
                c->in_off = 0;
        }
}

static const char *who(const struct conn *c) {
        if (c->pool == P_PEER)
                return c->srv->conf->peers[c->idx].name;
        return c->from[0] ? c->from : "?";
}

/* Move c into pool p. A full pool makes room by closing its oldest
 * connection: one that has had its time, while c has just shown it is
 * alive; an attacker who keeps the pool full must keep reconnecting, and an
 * honest client, which sends its frames at once, passes between. */
static void admit(struct conn *c, enum conn_pool p, size_t max) {
        struct server *s = c->srv;

        if (s->n_pool[p] >= max) {
                struct conn *oldest = NULL;

                for (struct conn *o = s->conns; o; o = o->next)
                        if (o != c && !o->dead && o->pool == p)
                                oldest = o;   /* the list is newest first */
                if (oldest) {
                        note(s, "socket: %zu connections %s; closing the oldest", max,
                             p == P_NEW ? "have sent nothing yet" : p == P_RELAY ? "wait for their HELLO"
                                                                         : "hold an unread --status answer");
                        conn_close(oldest);
                }
        }
        s->n_pool[c->pool]--;
        s->n_pool[p]++;
        c->pool = p;
}

/* Tell the other side why, then close once that is written. */
static int refuse(struct conn *c, const char *why) {
        struct proto_msg m = { .type = PROTO_ERROR };

        if (c->pool == P_PEER)
                log_warn("inbound connection from peer \"%s\": %s; closing it", who(c), why);
        else
                note(c->srv, "inbound connection from peer \"%s\": %s; closing it", who(c), why);
        m.data = (const uint8_t *)why;
        m.data_len = strlen(why);
        (void)proto_msg_encode(&c->out, &m);
        c->state = C_CLOSING;
        c->since_ms = loop_now_ms(c->srv->loop);
        return -ECONNABORTED;
}

static size_t unwritten(const struct conn *c) {
        return c->out.len - c->out_off;
}

/* This node's inventory, at most one at a time per connection (docs/DESIGN.md
 * "Bounds"): a request while one is still unwritten is remembered, and
 * answered by one fresh inventory once that one is out. */
static void send_inventory(struct conn *c) {
        if (c->written < c->inv_end) {
                c->inv_again = true;
                return;
        }
        c->inv_again = false;
        node_inv_encode(c->srv->node, &c->out);
        c->inv_end = c->written + unwritten(c);
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
        /* One live connection per peer, in the peer's own slot: a new one
         * means the old is dead (a partition the old relay has not noticed
         * yet). */
        for (struct conn *o = c->srv->conns; o; o = o->next) {
                if (o != c && !o->dead && o->pool == P_PEER && o->idx == c->idx) {
                        log_info("peer \"%s\": a new connection replaces an older one", m->node);
                        conn_close(o);
                }
        }
        admit(c, P_PEER, SIZE_MAX);
        c->state = C_PEER;
        reply.clock_ns = loop_realtime_ns();
        snprintf(reply.node, sizeof(reply.node), "%s", conf->name);
        snprintf(reply.to, sizeof(reply.to), "%s", m->node);
        (void)proto_msg_encode(&c->out, &reply);
        send_inventory(c);
        log_info("peer \"%s\": connected to us", m->node);
        if (c->srv->peers)
                peer_kick(c->srv->peers[c->idx]);
        return 0;
}

static int on_status_req(struct conn *c, const struct proto_msg *m) {
        struct proto_msg reply = { .type = PROTO_STATUS };
        struct proto_wr text;

        admit(c, P_CLI, SRV_CLI_MAX);
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

static int on_msg(struct conn *c, const struct proto_msg *m) {
        struct proto_msg reply = { 0 };
        char why[128];

        switch (c->state) {
        case C_NEW:
                if (m->type == PROTO_RELAY) {
                        snprintf(c->from, sizeof(c->from), "%s", m->node);
                        admit(c, P_RELAY, SRV_RELAY_MAX);
                        c->state = C_SERVE;
                        return 0;
                }
                if (m->type == PROTO_STATUS_REQ)
                        return on_status_req(c, m);
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
                        send_inventory(c);
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

/* Reading is on only while the connection may still send frames and its
 * replies are below the high-water mark: backpressure, not buffering. */
static void conn_update_events(struct conn *c) {
        uint32_t ev = 0;

        if (c->dead)
                return;
        if (c->state != C_CLOSING && unwritten(c) < SRV_OUT_HIGH)
                ev |= EPOLLIN;
        if (c->ok_len > 0)
                ev |= EPOLLOUT;
        if (loop_mod_fd(c->srv->loop, c->reg, ev) < 0)
                conn_close(c);
}

static void resume_later(struct conn *c) {
        c->more = true;
        loop_timer_arm_sooner(c->srv->loop, c->srv->resume, 0);
}

static void conn_write(struct conn *c) {
        bool was_high = unwritten(c) >= SRV_OUT_HIGH;

        while (c->ok_len > 0 && !c->dead) {
                ssize_t n = send(c->fd, c->out.buf + c->out_off, c->ok_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                conn_close(c);
                        break;
                }
                c->out_off += (size_t)n;
                c->ok_len -= (size_t)n;
                c->written += (uint64_t)n;
                c->last_io_ms = loop_now_ms(c->srv->loop);
        }
        if (c->dead)
                return;
        /* Written bytes are dropped lazily: one memmove per half buffer, not
         * one per send() (an inventory leaves in many pieces). */
        if (c->out_off == c->out.len) {
                if (c->out.cap > (SRV_OUT_HIGH << 1))
                        proto_wr_free(&c->out);   /* give a big inventory's memory back */
                else
                        proto_wr_reset(&c->out);
                c->out_off = 0;
        } else if (c->out_off > (64u << 10) && c->out_off > c->out.len / 2) {
                proto_wr_consume(&c->out, c->out_off);
                c->out_off = 0;
        }
        if (c->state == C_CLOSING && unwritten(c) == 0) {
                conn_close(c);
                return;
        }
        if (c->inv_again && c->written >= c->inv_end)
                send_inventory(c);   /* leaves at the next flush, after that turn's tombstones are durable */
        /* Frames left in the input when the replies went over the mark are
         * not in the socket any more: epoll would not bring them back. */
        if (was_high && unwritten(c) < SRV_OUT_HIGH && c->in.len > c->in_off)
                resume_later(c);
        conn_update_events(c);
}

/* Read and dispatch, frame by frame, while the replies stay below the
 * high-water mark and within this callback's share of the loop; then yield.
 * Level-triggered epoll brings back what is still in the socket, the
 * resume timer what is already in the input buffer. */
static void conn_pump(struct conn *c) {
        size_t bytes = 0, frames = 0;
        char buf[SRV_PEER_READ];

        c->more = false;
        c->pumping = true;
        while (!c->dead && c->state != C_CLOSING) {
                size_t cap = c->state == C_PEER ? SRV_PEER_FRAME : SRV_SMALL_FRAME;
                struct proto_msg m;
                size_t flen;
                ssize_t n;
                int r;

                if (unwritten(c) >= SRV_OUT_HIGH)
                        break;   /* conn_write resumes it once below the mark */
                if (frames >= SRV_SHARE_FRAMES || bytes >= SRV_SHARE_BYTES) {
                        resume_later(c);
                        break;
                }
                r = wire_next(c->in.buf + c->in_off, c->in.len - c->in_off, cap, &m, &flen);
                if (r < 0) {
                        refuse(c, r == -EMSGSIZE && cap == SRV_SMALL_FRAME
                                          ? "frame over the limit before the handshake"
                                          : wire_strerror(r));
                        break;
                }
                if (r > 0) {
                        frames++;
                        (void)on_msg(c, &m);
                        c->in_off += flen;   /* m.data pointed into in until here */
                        continue;
                }
                if (c->in_off) {
                        proto_wr_consume(&c->in, c->in_off);
                        c->in_off = 0;
                }
                n = recv(c->fd, buf, c->state == C_PEER ? SRV_PEER_READ : SRV_SMALL_READ, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                conn_close(c);
                        break;
                }
                if (n == 0) {
                        if (c->state == C_PEER)
                                log_info("peer \"%s\": disconnected from us", who(c));
                        conn_close(c);
                        break;
                }
                c->last_io_ms = loop_now_ms(c->srv->loop);
                bytes += (size_t)n;
                proto_put_bytes(&c->in, buf, (size_t)n);
                if (proto_wr_error(&c->in)) {
                        refuse(c, "out of memory for its input");
                        break;
                }
        }
        if (c->dead || c->state == C_CLOSING) {
                proto_wr_free(&c->in);   /* nothing more is read from it */
                c->in_off = 0;
        } else if (c->in_off == c->in.len && c->in.cap > (SRV_PEER_READ << 1)) {
                proto_wr_free(&c->in);   /* a big frame's memory goes back once it is handled */
                c->in_off = 0;
        }
        c->pumping = false;
}

static void on_conn(struct loop *l, uint32_t events, void *ctx) {
        struct conn *c = ctx;

        (void)l;
        /* The other end is gone: nothing read now could be answered. */
        if (events & (EPOLLERR | EPOLLHUP)) {
                conn_close(c);
                return;
        }
        if (events & EPOLLIN)
                conn_pump(c);
        if (!c->dead && (events & EPOLLOUT))
                conn_write(c);
        if (!c->dead)
                conn_update_events(c);
}

/* Connections that yielded their share with whole frames still buffered. */
static int64_t on_resume(struct loop *l, void *ctx) {
        struct server *s = ctx;

        (void)l;
        for (struct conn *c = s->conns; c; c = c->next) {
                if (c->dead || !c->more)
                        continue;
                conn_pump(c);
                if (!c->dead)
                        conn_update_events(c);
        }
        return LOOP_TIMER_STOP;
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

/* A new connection reads at once what it has already sent: the relay and
 * the CLI write their first frame right after connect(), so they are
 * classed (RELAY, or STATUS_REQ) before they need a slot among the
 * unclassified, which a flood of silent sockets may keep full. */
static void on_accept(struct loop *l, uint32_t events, void *ctx) {
        struct server *s = ctx;

        (void)events;
        for (int i = 0; i < SRV_ACCEPT_BATCH; i++) {
                int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct conn *c;

                if (fd < 0)
                        return;
                if (!client_allowed(s, fd)) {
                        sock_refuse(fd);
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
                c->pool = P_NONE;
                c->since_ms = c->last_io_ms = loop_now_ms(l);
                proto_wr_init(&c->in);
                proto_wr_init(&c->out);
                c->next = s->conns;
                s->conns = c;
                s->n_pool[P_NONE]++;
                conn_pump(c);
                if (!c->dead && c->pool == P_NONE)
                        admit(c, P_NEW, SRV_NEW_MAX);
                if (!c->dead)
                        conn_update_events(c);
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
                        c->ok_len = unwritten(c);
                        conn_write(c);
                }
                if (c->dead) {
                        *cp = c->next;
                        conn_free(c);
                } else {
                        cp = &c->next;
                }
        }
}

/* Close connections that never finished their handshake, answers nobody
 * reads, and peers gone silent: their relays can outlive a partition by
 * hours (TCP keepalive). */
static int64_t on_tick(struct loop *l, void *ctx) {
        struct server *s = ctx;
        uint64_t now = loop_now_ms(l);

        for (struct conn *c = s->conns; c; c = c->next) {
                uint64_t age = now - c->since_ms;

                if (c->dead)
                        continue;
                if (c->state == C_NEW && age > SRV_FIRST_MS) {
                        note(s, "inbound connection: nothing sent within %d s; closing it", SRV_FIRST_MS / 1000);
                        conn_close(c);
                } else if (c->state == C_SERVE && age > SRV_HELLO_MS) {
                        note(s, "inbound connection from peer \"%s\": no HELLO within %d s; closing it", who(c),
                             SRV_HELLO_MS / 1000);
                        conn_close(c);
                } else if (c->state == C_CLOSING && age > SRV_CLOSING_MS) {
                        conn_close(c);
                } else if (c->state == C_PEER && now - c->last_io_ms > SRV_SILENCE_MS) {
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
        s->resume = loop_timer_new(s->loop, on_resume, s);
        r = s->tick && s->resume ? loop_add_fd(s->loop, s->fd, EPOLLIN, on_accept, s, &s->reg) : -ENOMEM;
        if (r < 0) {
                loop_del_timer(s->loop, s->tick);
                loop_del_timer(s->loop, s->resume);
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
        loop_del_timer(s->loop, s->resume);
        close(s->fd);
        free(s);
}
