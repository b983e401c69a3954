#include "daemon/server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/node.h"
#include "daemon/server_int.h"
#include "daemon/sock.h"
#include "daemon/wire.h"
#include "proto/msg.h"

/* Reading is on only while the connection may still send frames and its
 * replies are below the high-water mark: backpressure, not buffering. */
static void conn_update_events(struct server_conn *c) {
        uint32_t ev = 0;

        if (c->dead)
                return;
        if (c->state != C_CLOSING && server_backlog(c) < SRV_OUT_HIGH)
                ev |= EPOLLIN;
        if (c->handed) {
                /* Two pipes: each registered on its own. */
                if (loop_mod_fd(c->srv->loop, c->reg, ev) < 0 ||
                    loop_mod_fd(c->srv->loop, c->wreg, c->ok_len > 0 ? EPOLLOUT : 0) < 0)
                        server_conn_close(c);
                return;
        }
        if (c->ok_len > 0)
                ev |= EPOLLOUT;
        if (loop_mod_fd(c->srv->loop, c->reg, ev) < 0)
                server_conn_close(c);
}

static void resume_later(struct server_conn *c) {
        c->more = true;
        loop_timer_arm_sooner(c->srv->loop, c->srv->resume, 0);
}

static void conn_write(struct server_conn *c) {
        bool was_high = server_backlog(c) >= SRV_OUT_HIGH;

        while (c->ok_len > 0 && !c->dead) {
                /* A pipe takes no MSG_NOSIGNAL: SIGPIPE is ignored (main.c). */
                ssize_t n = c->handed ? write(c->wfd, c->out.buf + c->out_off, c->ok_len)
                                      : send(c->fd, c->out.buf + c->out_off, c->ok_len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                server_conn_close(c);
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
        if (c->state == C_CLOSING && server_unwritten(c) == 0) {
                server_conn_close(c);
                return;
        }
        if (c->inv_again)
                server_send_inventory(c);   /* leaves at the next flush, after that turn's tombstones are durable */
        /* Frames left in the input when the replies went over the mark are
         * not in the socket any more: epoll would not bring them back. */
        if (was_high && server_backlog(c) < SRV_OUT_HIGH && c->in.len > c->in_off)
                resume_later(c);
        conn_update_events(c);
}

static void on_conn(struct loop *l, uint32_t events, void *ctx);

/* After a hand-off the relay only waits for its socket to close; the
 * socket is watched for the relay's end (killed: its sshd keeps the
 * session while we hold the pipes), never read. */
static void on_relay_end(struct loop *l, uint32_t events, void *ctx) {
        struct server_conn *c = ctx;

        (void)l;
        (void)events;
        if (c->state == C_PEER)
                log_info("peer \"%s\": its relay ended; closing its connection to us", server_who(c));
        server_conn_close(c);
}

/* The stdout pipe: writable again, or its reader (sshd) gone (EPOLLERR;
 * EPOLLHUP if it is a socket): nothing written now would be read. */
static void on_conn_out(struct loop *l, uint32_t events, void *ctx) {
        struct server_conn *c = ctx;

        (void)l;
        if (events & (EPOLLERR | EPOLLHUP)) {
                server_conn_close(c);
                return;
        }
        conn_write(c);
}

/* Take the relay's stdin and stdout as this connection's read and write
 * sides (docs/DESIGN.md "Connections"): non-blocking (they were already
 * O_CLOEXEC, from MSG_CMSG_CLOEXEC), each registered on its own, the socket
 * kept to see the relay end. The HANDOFF answer goes to the relay at once,
 * on the socket: it acknowledges nothing durable, and everything after it
 * goes to the pipes. Nothing has been read from the pipes yet, so on a
 * failure here the relay, seeing its socket close without that answer,
 * can still copy. Returns 0 or a negative errno (c is to be closed). */
static int conn_switch(struct server_conn *c) {
        struct proto_msg m = { .type = PROTO_HANDOFF };
        struct loop *l = c->srv->loop;
        int rfd = c->fds[0], wfd = c->fds[1];
        struct proto_wr ack;
        ssize_t n;

        for (int i = 0; i < 2; i++) {
                int fl = fcntl(c->fds[i], F_GETFL);

                if (fl < 0 || fcntl(c->fds[i], F_SETFL, fl | O_NONBLOCK) < 0)
                        return -errno;
                /* As much in flight each way as the copying relay held
                 * (256 KiB); the default 64 KiB if the system says no. */
                (void)fcntl(c->fds[i], F_SETPIPE_SZ, 256 << 10);
        }
        loop_del_fd(l, c->reg);
        c->reg = NULL;
        c->relay_fd = c->fd;
        c->fd = rfd;
        c->wfd = wfd;
        c->n_fds = 0;
        c->handed = true;
        if (loop_add_fd(l, c->relay_fd, EPOLLRDHUP, on_relay_end, c, &c->relay_reg) < 0 ||
            loop_add_fd(l, c->fd, EPOLLIN, on_conn, c, &c->reg) < 0 || loop_add_fd(l, c->wfd, 0, on_conn_out, c, &c->wreg) < 0)
                return -ENOMEM;
        proto_wr_init(&ack);
        if (proto_msg_encode(&ack, &m) < 0) {
                proto_wr_free(&ack);
                return -ENOMEM;
        }
        /* Nothing else was ever written to the socket: it takes these few bytes. */
        n = send(c->relay_fd, ack.buf, ack.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        proto_wr_free(&ack);
        return n == (ssize_t)PROTO_HDR_LEN ? 0 : n < 0 ? -errno : -EIO;
}

/* One read from c. Before the handshake, from the socket, with the fds a
 * relay passes (fdpass_recv). */
static ssize_t conn_read(struct server_conn *c, char *buf, size_t len) {
        ssize_t n;

        if (c->handed)
                n = read(c->fd, buf, len);
        else if (c->state == C_NEW || c->state == C_SERVE)
                return fdpass_recv(c->fd, buf, len, c->fds, &c->n_fds);
        else
                n = recv(c->fd, buf, len, MSG_DONTWAIT);
        return n < 0 ? -errno : n;
}

/* Read and dispatch, frame by frame, while the replies stay below the
 * high-water mark and within this callback's share of the loop; then yield.
 * Level-triggered epoll brings back what is still in the socket, the
 * resume timer what is already in the input buffer. */
static void conn_pump(struct server_conn *c) {
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

                if (server_backlog(c) >= SRV_OUT_HIGH)
                        break;          /* conn_write resumes it once below the mark */
                if (frames >= SRV_SHARE_FRAMES || bytes >= SRV_SHARE_BYTES) {
                        resume_later(c);
                        break;
                }
                /* in.buf is NULL until the first read (NULL + 0 is undefined) */
                r = wire_next(c->in.buf ? c->in.buf + c->in_off : NULL, c->in.len - c->in_off, cap, &m, &flen);
                if (r < 0) {
                        server_refuse(c, r == -EMSGSIZE && cap == SRV_SMALL_FRAME
                                          ? "frame over the limit before the handshake"
                                          : wire_strerror(r));
                        break;
                }
                if (r > 0) {
                        frames++;
                        (void)server_msg(c, &m);
                        c->in_off += flen;   /* m.data pointed into in until here */
                        if (c->handoff_now) {
                                c->handoff_now = false;
                                /* What follows comes on the pipes; bytes after
                                 * the HANDOFF on the socket would be lost. */
                                if (c->in.len > c->in_off) {
                                        server_conn_drop_fds(c);
                                        server_refuse(c, "bytes after HANDOFF");
                                } else if (conn_switch(c) < 0) {
                                        server_conn_close(c);
                                }
                        }
                        continue;
                }
                if (c->in_off) {
                        proto_wr_consume(&c->in, c->in_off);
                        c->in_off = 0;
                }
                n = conn_read(c, buf, c->state == C_PEER ? SRV_PEER_READ : SRV_SMALL_READ);
                if (n == -ETOOMANYREFS) {
                        server_refuse(c, "more fds than a relay's stdin and stdout");
                        break;
                }
                if (n < 0) {
                        if (n == -EINTR)
                                continue;
                        if (n != -EAGAIN)
                                server_conn_close(c);
                        break;
                }
                if (n == 0) {
                        if (c->state == C_PEER)
                                log_info("peer \"%s\": disconnected from us", server_who(c));
                        server_conn_close(c);
                        break;
                }
                c->last_io_ms = loop_now_ms(c->srv->loop);
                bytes += (size_t)n;
                proto_put_bytes(&c->in, buf, (size_t)n);
                if (proto_wr_error(&c->in)) {
                        server_refuse(c, "out of memory for its input");
                        break;
                }
        }
        /* fds are taken only by a HANDOFF, which comes before the HELLO. */
        if (c->n_fds && c->state != C_NEW && c->state != C_SERVE)
                server_conn_drop_fds(c);
        if (c->dead || c->state == C_CLOSING) {
                proto_wr_free(&c->in);  /* nothing more is read from it */
                c->in_off = 0;
        } else if (c->in_off == c->in.len && c->in.cap > (SRV_PEER_READ << 1)) {
                proto_wr_free(&c->in);  /* a big frame's memory goes back once it is handled */
                c->in_off = 0;
        }
        c->pumping = false;
}

static void on_conn(struct loop *l, uint32_t events, void *ctx) {
        struct server_conn *c = ctx;

        (void)l;
        /* The other end is gone: nothing read now could be answered. */
        if (events & EPOLLERR || (events & EPOLLHUP && !c->handed)) {
                server_conn_close(c);
                return;
        }
        /* The stdin pipe's writer (sshd) closed it: the pusher's EOF,
         * after its last frames, which are read and handled as the
         * copying relay passed them on before its shutdown(); what a
         * backlog keeps from being read now is dropped (EPOLLHUP would
         * come back at once), and the pusher sends it again. */
        if (events & EPOLLHUP) {
                conn_pump(c);
                server_conn_close(c);
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
        for (struct server_conn *c = s->conns; c; c = c->next) {
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

static void conn_free(struct server_conn *c) {
        server_conn_close(c);
        proto_wr_free(&c->in);
        proto_wr_free(&c->out);
        free(c);
}

/* Free the closed connections. Also done outside the flush (which waits
 * while tombstones cannot be synced), so a flood meanwhile leaves no pile.
 * Only at the top of a callback, timer or turn: never while one of them is
 * being dispatched. */
static void reap(struct server *s) {
        struct server_conn **cp = &s->conns;

        while (*cp) {
                struct server_conn *c = *cp;

                if (c->dead) {
                        *cp = c->next;
                        conn_free(c);
                } else {
                        cp = &c->next;
                }
        }
}

/* A new connection reads at once what it has already sent: the relay and
 * the CLI write their first frame right after connect(), so they are
 * classed (RELAY, or STATUS_REQ) before they need a slot among the
 * unclassified, which a flood of silent sockets may keep full. */
static void on_accept(struct loop *l, uint32_t events, void *ctx) {
        struct server *s = ctx;

        (void)events;
        reap(s);
        for (int i = 0; i < SRV_ACCEPT_BATCH; i++) {
                int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                struct server_conn *c;

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
                c->fd = c->wfd = fd;
                c->relay_fd = -1;
                c->pool = P_NONE;
                c->since_ms = c->last_io_ms = loop_now_ms(l);
                proto_wr_init(&c->in);
                proto_wr_init(&c->out);
                c->next = s->conns;
                s->conns = c;
                s->n_pool[P_NONE]++;
                conn_pump(c);
                if (!c->dead && c->pool == P_NONE)
                        server_admit(c, P_NEW, SRV_NEW_MAX);
                if (!c->dead)
                        conn_update_events(c);
        }
}

void server_flush(struct server *s) {
        for (struct server_conn *c = s->conns; c; c = c->next) {
                if (!c->dead) {
                        c->ok_len = server_unwritten(c);
                        conn_write(c);
                }
        }
        reap(s);
}

/* Close connections that never finished their handshake, answers nobody
 * reads, and peers gone silent: their relays can outlive a partition by
 * hours (TCP keepalive). */
static int64_t on_tick(struct loop *l, void *ctx) {
        struct server *s = ctx;
        uint64_t now = loop_now_ms(l);

        reap(s);
        for (struct server_conn *c = s->conns; c; c = c->next) {
                uint64_t age = now - c->since_ms;

                if (c->dead)
                        continue;
                if (c->state == C_PEER && c->inv_again)
                        server_send_inventory(c);   /* one held back by SRV_INV_GAP_MS */
                if (c->state == C_NEW && age > SRV_FIRST_MS) {
                        server_note(&s->sock_lines, "inbound connection: nothing sent within %d s; closing it",
                                    SRV_FIRST_MS / 1000);
                        server_conn_close(c);
                } else if (c->state == C_SERVE && age > SRV_HELLO_MS) {
                        server_note(&s->relay_lines, "inbound connection from peer \"%s\": no HELLO within %d s; closing it", server_who(c),
                             SRV_HELLO_MS / 1000);
                        server_conn_close(c);
                } else if (c->state == C_CLOSING && age > SRV_CLOSING_MS) {
                        server_conn_close(c);
                } else if (c->state == C_PEER && now - c->last_io_ms > SRV_SILENCE_MS) {
                        log_warn("peer \"%s\": silent for %d s; closing its connection to us", server_who(c),
                                 SRV_SILENCE_MS / 1000);
                        server_conn_close(c);
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
        s->peer = calloc(s->conf->n_peers ? s->conf->n_peers : 1, sizeof(*s->peer));
        if (!s->peer) {
                free(s);
                return -ENOMEM;
        }
        s->fd = sock_open(s->conf->socket, &s->gid, &s->from_systemd);
        if (s->fd < 0) {
                r = s->fd;
                free(s->peer);
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
                free(s->peer);
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
                struct server_conn *c = s->conns;
                s->conns = c->next;
                conn_free(c);
        }
        loop_del_fd(s->loop, s->reg);
        loop_del_timer(s->loop, s->tick);
        loop_del_timer(s->loop, s->resume);
        close(s->fd);
        free(s->peer);
        free(s->peer_next);
        free(s);
}

int server_reserve_peers(struct server *s, size_t n) {
        free(s->peer_next);
        s->peer_next = calloc(n ? n : 1, sizeof(*s->peer_next));
        return s->peer_next ? 0 : -ENOMEM;
}

void server_set_conf(struct server *s, const struct conf *c, struct peer *const *peers, const size_t *new_of_old) {
        for (struct server_conn *k = s->conns; k; k = k->next) {
                if (k->dead || k->pool != P_PEER)
                        continue;
                if (new_of_old[k->idx] == NODE_NO_PEER) {
                        log_info("peer \"%s\": no longer in %s; closing its connection to us", server_who(k), c->path);
                        server_conn_close(k);   /* server_who() reads the old config: it is still alive */
                        continue;
                }
                k->idx = new_of_old[k->idx];
        }
        /* Each peer keeps its inventory rate and log limits; a new one
         * starts fresh (server_reserve_peers zeroed it). */
        for (size_t i = 0; i < s->conf->n_peers; i++)
                if (new_of_old[i] != NODE_NO_PEER)
                        s->peer_next[new_of_old[i]] = s->peer[i];
        free(s->peer);
        s->peer = s->peer_next;
        s->peer_next = NULL;
        s->conf = c;
        s->peers = peers;
}

size_t server_n_conns(const struct server *s) {
        size_t n = 0;

        for (const struct server_conn *k = s->conns; k; k = k->next)
                n += !k->dead;
        return n;
}

bool server_socket_ours(const struct server *s) {
        return !s->from_systemd;
}

void server_no_status(struct server *s) {
        s->no_status = true;
}
