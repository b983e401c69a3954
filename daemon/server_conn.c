/* The socket server's connections as slots (docs/DESIGN.md "Inbound
 * connections"): which pool each holds, closing, refusing, and the log
 * line a flood cannot multiply. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "daemon/server_int.h"
#include "lib/conf.h"
#include "proto/msg.h"

/* What a client can make the daemon log is rate-limited like the rest of
 * what it can make it do: a flood of sockets or reconnections is a few
 * lines with counts, not a flood of the journal. */
bool server_rate_ok(struct server_rate *lim, uint64_t *ret_quiet) {
        uint64_t now = loop_clock_ms();

        if (lim->ms && now - lim->ms < SRV_NOTE_MS) {
                lim->quiet++;
                return false;
        }
        *ret_quiet = lim->quiet;
        lim->ms = now;
        lim->quiet = 0;
        return true;
}

void server_note(struct server_rate *lim, const char *fmt, ...) {
        char line[400];
        uint64_t quiet;
        va_list ap;

        if (!server_rate_ok(lim, &quiet))
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (quiet)
                log_warn("%s (and %llu more such events in the last %d s)", line, (unsigned long long)quiet,
                         SRV_NOTE_MS / 1000);
        else
                log_warn("%s", line);
}

void server_conn_drop_fds(struct server_conn *c) {
        for (size_t i = 0; i < c->n_fds; i++)
                close(c->fds[i]);
        c->n_fds = 0;
}

void server_conn_close(struct server_conn *c) {
        if (c->dead)
                return;
        c->dead = true;
        c->srv->n_pool[c->pool]--;
        loop_del_fd(c->srv->loop, c->reg);
        loop_del_fd(c->srv->loop, c->wreg);
        loop_del_fd(c->srv->loop, c->relay_reg);
        c->reg = c->wreg = c->relay_reg = NULL;
        /* A relay that handed its stdin/stdout over sleeps until its
         * socket closes here, then exits, and sshd ends the session. */
        if (c->wfd != c->fd && c->wfd >= 0)
                close(c->wfd);
        if (c->relay_fd >= 0)
                close(c->relay_fd);
        close(c->fd);
        c->fd = c->wfd = c->relay_fd = -1;
        server_conn_drop_fds(c);
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

const char *server_who(const struct server_conn *c) {
        if (c->pool == P_PEER)
                return c->srv->conf->peers[c->idx].name;
        return c->from[0] ? c->from : "?";
}

/* Move c into pool p. A full pool makes room by closing its oldest
 * connection: one that has had its time, while c has just shown it is
 * alive; an attacker who keeps the pool full must keep reconnecting, and an
 * honest client, which sends its frames at once, passes between. */
void server_admit(struct server_conn *c, enum server_pool p, size_t max) {
        struct server *s = c->srv;

        if (s->n_pool[p] >= max) {
                struct server_conn *oldest = NULL;

                for (struct server_conn *o = s->conns; o; o = o->next)
                        if (o != c && !o->dead && o->pool == p)
                                oldest = o;   /* the list is newest first */
                if (oldest) {
                        server_note(&s->sock_lines, "socket: %zu connections %s; closing the oldest", max,
                                    p == P_NEW     ? "have sent nothing yet"
                                    : p == P_RELAY ? "wait for their HELLO"
                                                   : "hold an unread --status answer");
                        server_conn_close(oldest);
                }
        }
        s->n_pool[c->pool]--;
        s->n_pool[p]++;
        c->pool = p;
}

/* Tell the other side why, then close once that is written. */
int server_refuse(struct server_conn *c, const char *why) {
        struct proto_msg m = { .type = PROTO_ERROR };

        struct server_rate *lim = c->pool == P_PEER    ? &c->srv->peer[c->idx].refusals
                                : c->state == C_SERVE ? &c->srv->relay_lines
                                                      : &c->srv->sock_lines;

        server_note(lim, "inbound connection from peer \"%s\": %s; closing it", server_who(c), why);
        m.data = (const uint8_t *)why;
        m.data_len = strlen(why);
        (void)proto_msg_encode(&c->out, &m);
        c->state = C_CLOSING;
        c->since_ms = loop_now_ms(c->srv->loop);
        return -ECONNABORTED;
}
