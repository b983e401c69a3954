/* The pushing side's connection to one peer: the state machine from
 * connect to READY (every transition is made here), reading and writing
 * frames over the libssh2 channel, pings, reconnect backoff, and filling
 * the window from the node. What the peer's frames mean is peer_msg.c; the
 * SSH steps are peer_ssh.c. */
#include "daemon/peer.h"
#include "daemon/peer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/peer_ssh.h"
#include "daemon/wire.h"
#include "proto/msg.h"

static void drive(struct peer *p);

/* Go DOWN: log reason (once while it repeats), drop the connection, arm
 * the reconnect backoff (or fail, with once). The only way down. */
static void peer_down(struct peer *p, const char *reason) {
        bool was_up = p->state == PEER_READY;
        char why[sizeof(p->last_error)];

        snprintf(why, sizeof(why), "%s", reason);   /* reason may be p->last_error itself */

        if (strcmp(p->last_error, why) != 0 || was_up)
                log_warn("peer \"%s\": %s%s", peer_name(p), why, p->once ? "" : "; will retry");
        else
                log_debug("peer \"%s\": %s", peer_name(p), why);
        snprintf(p->last_error, sizeof(p->last_error), "%s", why);
        node_count(p->node, p->idx, NODE_STAT_ERRORS);
        loop_del_fd(p->loop, p->reg);
        p->reg = NULL;
        peer_ssh_free(p->ssh);
        p->ssh = NULL;
        proto_wr_reset(&p->in);
        proto_wr_reset(&p->out);
        p->in_flight = 0;
        p->fl_head = 0;
        p->resyncing = false;
        p->state = PEER_DOWN;
        if (p->once) {
                p->failed = true;
                loop_timer_disarm(p->timer);
                return;
        }
        /* Backoff with jitter, so a cluster that lost a node does not
         * reconnect in lockstep. */
        loop_timer_arm(p->loop, p->timer, p->backoff_ms / 2 + (uint64_t)rand_r(&p->seed) % (p->backoff_ms / 2 + 1));
        p->backoff_ms = p->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void on_io(struct loop *l, uint32_t events, void *ctx) {
        (void)l;
        (void)events;
        drive(ctx);
}

static int rearm(struct peer *p) {
        int fd = peer_ssh_fd(p->ssh);
        uint32_t ev = peer_ssh_events(p->ssh);
        int r;

        if (fd < 0)
                return 0;   /* resolving: the timer polls */
        if (!p->reg)
                return loop_add_fd(p->loop, fd, ev, on_io, p, &p->reg);
        if ((r = loop_mod_fd(p->loop, p->reg, ev)) < 0)
                return r;
        return 0;
}

static void peer_queue(struct peer *p, const struct proto_msg *m) {
        if (proto_msg_encode(&p->out, m) < 0)
                log_error("peer \"%s\": cannot encode %s", peer_name(p), proto_type_name(m->type));
}

static int write_out(struct peer *p) {
        while (p->out.len > 0) {
                ssize_t n = peer_ssh_write(p->ssh, p->out.buf, p->out.len);

                if (n == -EAGAIN)
                        return 0;
                if (n < 0)
                        return (int)n;
                proto_wr_consume(&p->out, (size_t)n);
        }
        return 0;
}

/* HELLO checked: the peer's inventory follows. */
static void to_inv(struct peer *p) {
        p->state = PEER_INV;
        p->inv_entries = 0;
        node_catchup_begin(p->node, p->idx);
        /* The names the last, unfinished, inventory made this node remember
         * (only that peer held them) are wanted no more: drop them now, not
         * at the next housekeeping, or a peer that reconnects with new names
         * each time adds a whole inventory of entries at each connect. */
        node_expire_tombs(p->node);
}

/* INV_END of the first catch-up: the connection is up. */
static void to_ready(struct peer *p) {
        (void)peer_msg_inv_end(p);
        p->state = PEER_READY;
        p->backoff_ms = PEER_BACKOFF_MIN_MS;
        p->last_error[0] = 0;
        p->last_resync_ms = loop_clock_ms();
        log_info("peer \"%s\": connected, %zu to send", peer_name(p), node_pending(p->node, p->idx));
}

static int on_msg(void *ctx, const struct proto_msg *m) {
        struct peer *p = ctx;
        char why[PEER_WHY_MAX] = "";
        int r = -EPROTO;

        p->last_rx_ms = loop_clock_ms();
        if (m->type == PROTO_ERROR) {
                char clean[201];

                snprintf(why, sizeof(why), "refused by the peer: %s", log_clean(clean, sizeof(clean), m->data, m->data_len));
                peer_down(p, why);
                return -ECONNABORTED;
        }
        switch (p->state) {
        case PEER_HELLO:
                if (m->type != PROTO_HELLO)
                        break;
                if ((r = peer_msg_hello(p, m, why)) < 0)
                        goto down;
                to_inv(p);
                return 0;
        case PEER_INV:
        case PEER_READY:
                if (m->type == PROTO_INV && (p->state == PEER_INV || p->resyncing)) {
                        if ((r = peer_msg_inv(p, m, why)) < 0)
                                goto down;
                        return 0;
                }
                if (m->type == PROTO_INV_END && p->state == PEER_INV) {
                        to_ready(p);
                        return 0;
                }
                if (m->type == PROTO_INV_END && p->resyncing) {
                        size_t n = peer_msg_inv_end(p);

                        p->resyncing = false;
                        if (n > 0)
                                log_info("peer \"%s\": periodic catch-up found %zu to send", peer_name(p), n);
                        return 0;
                }
                if (p->state == PEER_INV)
                        break;
                if (m->type == PROTO_ACK) {
                        if ((r = peer_msg_ack(p, m, why)) < 0)
                                goto down;
                        return 0;
                }
                if (m->type == PROTO_PONG)
                        return 0;
                break;
        default:
                break;
        }
        snprintf(why, sizeof(why), "unexpected %s frame", proto_type_name(m->type));
down:
        peer_down(p, why);
        return r;
}

/* The remote's stderr (sshd, the shell, the relay) is logged, at most
 * PEER_ERR_LINES lines per PEER_ERR_MS and then a count: a hostile peer
 * could write it as fast as the channel goes. last_error has the last. */
static void stderr_line(void *ctx, const char *line) {
        struct peer *p = ctx;
        uint64_t now = loop_clock_ms();
        char clean[400];

        log_clean(clean, sizeof(clean), line, strlen(line));
        snprintf(p->last_error, sizeof(p->last_error), "remote: %s", clean);
        if (!p->err_ms || now - p->err_ms >= PEER_ERR_MS) {
                if (p->err_quiet)
                        log_warn("peer \"%s\": %llu more lines from the remote not logged", peer_name(p),
                                 (unsigned long long)p->err_quiet);
                p->err_ms = now;
                p->err_lines = p->err_quiet = 0;
        }
        if (p->err_lines++ < PEER_ERR_LINES)
                log_warn("peer \"%s\": remote: %s", peer_name(p), clean);
        else
                p->err_quiet++;
}

static void send_hello(struct peer *p) {
        struct proto_msg m = { .type = PROTO_HELLO, .version = PROTO_VERSION };

        p->hello_ns = loop_realtime_ns();
        m.clock_ns = p->hello_ns;
        snprintf(m.node, sizeof(m.node), "%s", p->conf->name);
        snprintf(m.to, sizeof(m.to), "%s", peer_name(p));
        peer_queue(p, &m);
        p->state = PEER_HELLO;
        p->last_rx_ms = loop_clock_ms();
}

/* Read and dispatch until the channel has nothing more (0) or *budget
 * bytes are read (1: the caller comes back soon); <0 once down. A peer that sends faster
 * than we handle would otherwise hold the loop here for good, and with it
 * --status, the socket and every other peer (docs/DESIGN.md "Bounds"). */
static int read_in(struct peer *p, size_t *budget) {
        const char *why = NULL;
        char buf[64 * 1024];
        int r;

        for (;;) {
                ssize_t n;

                if (*budget == 0)
                        return 1;
                n = peer_ssh_read(p->ssh, buf, sizeof(buf) < *budget ? sizeof(buf) : *budget);
                if (n == -EAGAIN)
                        return 0;
                if (n < 0) {
                        peer_down(p, peer_ssh_error(p->ssh));
                        return -ECONNRESET;
                }
                if (n == 0) {
                        peer_ssh_stderr(p->ssh, stderr_line, p);
                        peer_down(p, p->last_error[0] ? p->last_error : "the peer closed the connection");
                        return -ECONNRESET;
                }
                p->rx_bytes += (size_t)n;
                *budget -= (size_t)n;
                proto_put_bytes(&p->in, buf, (size_t)n);
                if (proto_wr_error(&p->in) || p->in.len > PEER_IN_MAX) {
                        peer_down(p, "out of memory buffering input");
                        return -ENOMEM;
                }
                r = wire_dispatch(&p->in, on_msg, p, &why);
                if (r < 0) {
                        if (why) {
                                char msg[300];

                                snprintf(msg, sizeof(msg), "protocol error: %s (is the forced command "
                                         "sessyncd --serve, with nothing printed by the shell?)", why);
                                peer_down(p, msg);
                        }
                        return r;
                }
        }
}

static void drive(struct peer *p) {
        size_t budget = PEER_SHARE_BYTES;
        int r;

        if (p->state == PEER_DOWN)
                return;
        if (p->state == PEER_CONNECTING) {
                r = peer_ssh_step(p->ssh);
                if (r < 0 && r != -EAGAIN) {
                        peer_down(p, peer_ssh_error(p->ssh));
                        return;
                }
                if (r == 0)
                        send_hello(p);
        }
        /* libssh2 reads the socket inside stderr reads and writes too, and
         * keeps what it read for the channel: read again until a pass reads
         * nothing, or those ACKs would wait for the next wake-up. */
        for (int pass = 0; p->state >= PEER_HELLO && pass < 8; pass++) {
                size_t before = p->rx_bytes;

                if ((r = read_in(p, &budget)) < 0)
                        return;
                peer_ssh_stderr(p->ssh, stderr_line, p);
                if ((r = write_out(p)) < 0) {
                        peer_down(p, peer_ssh_error(p->ssh));
                        return;
                }
                if (p->rx_bytes == before)
                        break;
        }
        /* What is left may sit in libssh2's buffer, where epoll does not
         * see it: the timer comes back for it at once, after the others. */
        if (budget == 0 && p->state >= PEER_HELLO)
                loop_timer_arm_sooner(p->loop, p->timer, 0);
        if ((r = rearm(p)) < 0) {
                char why[128];

                snprintf(why, sizeof(why), "epoll: %s", strerror(-r));
                peer_down(p, why);
        }
}

static void connect_now(struct peer *p) {
        int r;

        if ((r = peer_ssh_new(p->conf, p->cp, &p->ssh)) < 0) {
                peer_down(p, "out of memory");
                return;
        }
        if (p->once)
                peer_ssh_set_drain(p->ssh);
        p->state = PEER_CONNECTING;
        p->started_ms = loop_clock_ms();
        loop_timer_arm(p->loop, p->timer, 50);
        drive(p);
}

static void ping(struct peer *p) {
        struct proto_msg m = { .type = PROTO_PING, .seq = p->seq++ };

        m.clock_ns = loop_realtime_ns();
        peer_queue(p, &m);
        p->last_ping_ms = loop_clock_ms();
}

/* Periodic catch-up (docs/DESIGN.md "Periodic catch-up"): replicated versions reach other
 * peers only through catch-up, so a version that missed a peer because of a
 * partition between two others arrives within this period, not only at the
 * next reconnect. */
static void resync(struct peer *p) {
        struct proto_msg m = { .type = PROTO_INV_REQ, .seq = p->seq++ };

        peer_queue(p, &m);
        node_catchup_begin(p->node, p->idx);
        p->inv_entries = 0;
        p->resyncing = true;
        p->last_resync_ms = loop_clock_ms();
}

static int64_t on_timer(struct loop *l, void *ctx) {
        struct peer *p = ctx;
        uint64_t now = loop_clock_ms();

        (void)l;
        switch (p->state) {
        case PEER_DOWN:
                connect_now(p);
                return LOOP_TIMER_STOP;
        case PEER_CONNECTING:
        case PEER_HELLO:
                if (now - p->started_ms > PEER_CONNECT_MS) {
                        peer_down(p, p->state == PEER_CONNECTING ? "timed out connecting" : "timed out in the handshake");
                        return LOOP_TIMER_STOP;
                }
                break;
        case PEER_INV:
                /* A large inventory may take long: only silence is fatal. */
                if (now - p->last_rx_ms > PEER_CONNECT_MS) {
                        peer_down(p, "timed out receiving the inventory");
                        return LOOP_TIMER_STOP;
                }
                break;
        case PEER_READY:
                if (now - p->last_rx_ms > PEER_DEAD_MS) {
                        peer_down(p, "no answer for 20 s");
                        return LOOP_TIMER_STOP;
                }
                if (now - p->last_ping_ms >= PEER_PING_MS)
                        ping(p);
                if (!p->resyncing && !p->once && now - p->last_resync_ms >= p->conf->resync_interval_ms)
                        resync(p);
                break;
        }
        drive(p);   /* resolving polls here; ACKs libssh2 buffered get read */
        /* drive() may have failed and armed the reconnect backoff: keep it. */
        if (p->state == PEER_DOWN)
                return LOOP_TIMER_STOP;
        return p->state == PEER_READY ? 1000 : 50;
}

int peer_new(struct node *n, const struct conf *c, struct loop *l, size_t idx, struct peer **ret) {
        struct peer *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->node = n;
        p->idx = idx;
        p->conf = c;
        p->cp = &c->peers[idx];
        p->loop = l;
        p->backoff_ms = PEER_BACKOFF_MIN_MS;
        p->seed = (unsigned)getpid() ^ (unsigned)idx * 2654435761u;
        proto_wr_init(&p->in);
        proto_wr_init(&p->out);
        p->timer = loop_timer_new(l, on_timer, p);
        if (!p->timer) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

void peer_free(struct peer *p) {
        if (!p)
                return;
        loop_del_fd(p->loop, p->reg);
        loop_del_timer(p->loop, p->timer);
        peer_ssh_free(p->ssh);
        proto_wr_free(&p->in);
        proto_wr_free(&p->out);
        free(p);
}

void peer_set_conf(struct peer *p, const struct conf *c, size_t idx) {
        p->conf = c;
        p->idx = idx;
        p->cp = &c->peers[idx];
        if (p->ssh)
                peer_ssh_set_conf(p->ssh, c, p->cp);
}

void peer_start(struct peer *p, bool once) {
        p->once = once;
        p->failed = false;
        if (p->state == PEER_DOWN)
                connect_now(p);
}

void peer_flush(struct peer *p) {
        uint64_t now = loop_clock_ms();

        if (node_pending(p->node, p->idx) == 0)
                p->dirty_since_ms = 0;
        else if (!p->dirty_since_ms)
                p->dirty_since_ms = now;
        /* Writing out reads too (drive): ACKs that come back may free
         * window slots or ask for a file again (NEED_FULL). Fill again
         * then, a few times, rather than wait for the next wake-up. */
        for (int pass = 0; pass < 4 && p->state == PEER_READY; pass++) {
                bool sent = false;

                while (p->in_flight < PEER_WINDOW && p->out.len < PEER_OUT_MAX &&
                       node_send_next(p->node, p->idx, &p->out, p->seq) > 0) {
                        uint32_t slot = (p->fl_head + p->in_flight) % PEER_WINDOW;

                        node_count(p->node, p->idx, NODE_STAT_SENT);
                        p->sent_ms[slot] = now;
                        p->sent_seq[slot] = p->seq;
                        p->in_flight++;
                        p->seq++;
                        sent = true;
                }
                if (p->out.len > 0)
                        drive(p);
                if (!sent || node_pending(p->node, p->idx) == 0)
                        break;
        }
        if (node_pending(p->node, p->idx) == 0)
                p->dirty_since_ms = 0;
}

void peer_kick(struct peer *p) {
        if (p->state != PEER_DOWN || p->once)
                return;
        p->backoff_ms = PEER_BACKOFF_MIN_MS;
        loop_timer_arm(p->loop, p->timer, 0);
}

enum peer_state peer_state(const struct peer *p) {
        return p->state;
}

bool peer_failed(const struct peer *p) {
        return p->failed;
}

bool peer_idle(const struct peer *p) {
        return p->state == PEER_READY && p->in_flight == 0 && node_pending(p->node, p->idx) == 0 &&
               p->out.len == 0;
}

uint64_t peer_lag_ms(const struct peer *p) {
        uint64_t now = loop_clock_ms(), lag = 0;

        if (p->dirty_since_ms && node_pending(p->node, p->idx) > 0)
                lag = now - p->dirty_since_ms;
        if (p->in_flight > 0 && now - p->sent_ms[p->fl_head] > lag)
                lag = now - p->sent_ms[p->fl_head];
        return lag;
}

uint32_t peer_in_flight(const struct peer *p) {
        return p->in_flight;
}

const char *peer_last_error(const struct peer *p) {
        return p->last_error;
}
