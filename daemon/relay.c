#include "daemon/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fdpass.h"
#include "daemon/standin.h"
#include "lib/conf.h"
#include "lib/io.h"
#include "proto/msg.h"

/* Bytes held per direction. Any bound works for correctness (the relay never
 * blocks, so neither side waits on the other); this one keeps a few
 * round trips of the SSH channel's window in flight. */
#define RELAY_BUF (256u << 10)
/* How long --serve waits for a starting daemon, or for another --serve
 * applying here (docs/DESIGN.md "Inbound connections"): within the
 * pusher's 15 s for the handshake. */
#define RELAY_WAIT_MS 10000

/* One direction: bytes read from one side, not yet written to the other. */
struct relay_buf {
        char b[RELAY_BUF];
        size_t off, len;
};

/* buf_fill moves the bytes to the front when the tail is used up. */
static bool buf_room(const struct relay_buf *q) {
        return q->len < sizeof(q->b);
}

/* Read what fd has into q. 1 data or nothing now, 0 EOF, <0 error. */
static int buf_fill(struct relay_buf *q, int fd) {
        ssize_t n;

        if (q->len == 0)
                q->off = 0;
        if (q->off + q->len == sizeof(q->b)) {
                memmove(q->b, q->b + q->off, q->len);
                q->off = 0;
        }
        do
                n = read(fd, q->b + q->off + q->len, sizeof(q->b) - q->off - q->len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? 1 : -errno;
        q->len += (size_t)n;
        return n > 0;
}

/* Write what fd takes of q. 0 or <0 on error (EPIPE: the other side left). */
static int buf_drain(struct relay_buf *q, int fd) {
        ssize_t n;

        do
                n = write(fd, q->b + q->off, q->len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? 0 : -errno;
        q->off += (size_t)n;
        q->len -= (size_t)n;
        return 0;
}

static int set_nonblock(int fd) {
        int fl = fcntl(fd, F_GETFL);

        return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Copy in -> sock and sock -> out until the daemon closes sock (it does when
 * the pusher's EOF reaches it) or a side fails. Nothing blocks: a side is
 * read only while the buffer toward the other side has room, and written
 * only when poll says it takes bytes, so a daemon whose replies back up
 * while the pusher keeps sending still gets its replies drained (the
 * deadlock of a blocking relay: docs/DESIGN.md "Connections"). first (the
 * RELAY frame) goes to sock before anything from in. */
static int pump(int in, int out, int sock, const void *first, size_t first_len) {
        struct relay_buf *up = calloc(1, sizeof(*up)), *down = calloc(1, sizeof(*down)); /* in -> sock, sock -> out */
        bool in_open = true, sock_open = true, shut = false;
        int r = 0;

        if (!up || !down) {
                r = -ENOMEM;
                goto out;
        }
        if (set_nonblock(in) < 0 || set_nonblock(out) < 0 || set_nonblock(sock) < 0) {
                r = -errno;
                goto out;
        }
        memcpy(up->b, first, first_len);
        up->len = first_len;
        while (sock_open || down->len > 0) {
                short sev = (short)((sock_open && buf_room(down) ? POLLIN : 0) | (up->len > 0 ? POLLOUT : 0));
                struct pollfd p[3] = {
                        { .fd = in_open && buf_room(up) ? in : -1, .events = POLLIN },
                        { .fd = sev ? sock : -1, .events = sev },
                        { .fd = down->len > 0 ? out : -1, .events = POLLOUT },
                };

                if (!in_open && up->len == 0 && !shut) {
                        /* The pusher is done: pass its EOF on, and keep
                         * relaying what the daemon still says. */
                        (void)shutdown(sock, SHUT_WR);
                        shut = true;
                }
                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (p[0].revents && (r = buf_fill(up, in)) <= 0) {
                        in_open = false;
                        if (r < 0)
                                goto out;
                }
                if (p[1].revents & (POLLOUT | POLLERR | POLLHUP) && up->len > 0 && buf_drain(up, sock) < 0) {
                        /* The daemon closed (after an ERROR, say): what it
                         * said is still to be relayed; the pusher's bytes
                         * have nowhere to go. */
                        up->len = 0;
                        in_open = false;
                        shut = true;
                }
                if (p[1].revents & (POLLIN | POLLERR | POLLHUP) && sock_open && buf_room(down) &&
                    buf_fill(down, sock) <= 0)
                        sock_open = false;
                if (p[2].revents && (r = buf_drain(down, out)) < 0)
                        goto out;
        }
        r = 0;
out:
        free(up);
        free(down);
        return r;
}

/* Reach the daemon, or, for a drain, what answers in its place when it is
 * not running (the stand-in, daemon/standin.c). Waits up to RELAY_WAIT_MS while a
 * daemon is starting or another --serve holds the state. Returns 0 and
 * *ret_fd, or a negative errno with *why set. */
static int reach(const struct conf *c, int *ret_fd, char *why, size_t why_size) {
        /* Only a --full-sync's connection asks for it (daemon/peer_ssh.c):
         * a peer daemon's pushes wait for this node's daemon, which
         * catches up from inventories; a stand-in for those would journal
         * what PHP changes here meanwhile without pushing it, and the
         * daemon's start would no longer see it (docs/DESIGN.md
         * "Readiness": "up drain"). */
        const char *asked = getenv("SSH_ORIGINAL_COMMAND");
        bool drain = asked && strstr(asked, "--drain");
        struct timespec t0, now, pause = { 0, 100 * 1000000L };
        int r;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                r = io_unix_connect(c->socket, ret_fd);
                if (r == 0 || (r != -ENOENT && r != -ECONNREFUSED) || !drain) {
                        if (r < 0)
                                snprintf(why, why_size, "cannot reach the daemon at %s: %s (is sessyncd running on "
                                         "\"%s\"?)", c->socket, strerror(-r), c->name);
                        return r;
                }
                r = standin_reach(c, ret_fd, why, why_size);
                if (r != -EBUSY)
                        return r;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > RELAY_WAIT_MS) {
                        /* --full-sync tries again on "retry" in the reason. */
                        snprintf(why, why_size, "busy: no daemon answers at %s and another sessyncd has held its "
                                 "state for %d s (a daemon starting, a --full-sync, or a stand-in that could not "
                                 "be reached); retry", c->socket, RELAY_WAIT_MS / 1000);
                        return r;
                }
                nanosleep(&pause, NULL);
        }
}

/* Say why to the pusher as an ERROR frame, in place of its HELLO's answer,
 * so its log and --full-sync's line show it; and on stderr for sshd's log. */
static void refuse(const struct conf *c, const char *why) {
        struct proto_msg m = { .type = PROTO_ERROR };
        struct proto_wr wr;
        char text[600];

        snprintf(text, sizeof(text), "node \"%s\": %s", c->name, why);
        fprintf(stderr, "sessyncd --serve: %s\n", text);
        m.data = (const uint8_t *)text;
        m.data_len = strlen(text);
        proto_wr_init(&wr);
        if (proto_msg_encode(&wr, &m) == 0)
                (void)io_write_all(STDOUT_FILENO, wr.buf, wr.len);
        proto_wr_free(&wr);
}

/* The daemon's answer to a HANDOFF: 1 it took stdin and stdout, 0 it did
 * not (an ERROR, or it closed: a daemon older than the hand-off refuses
 * the unknown frame; nothing was read from stdin by anyone, so copying is
 * still right), or <0: the pusher left (sshd closed stdout) meanwhile. No
 * deadline of our own: the daemon answers at once, and closes a relay
 * without a HELLO after 5 s (docs/DESIGN.md "Inbound connections"). */
static int handoff_answer(int sock) {
        uint8_t b[512];
        size_t len = 0;

        for (;;) {
                struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = STDOUT_FILENO, .events = 0 } };
                struct proto_msg m;
                size_t flen;
                ssize_t n;

                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))
                        return -EPIPE;
                if (!p[0].revents)
                        continue;
                do
                        n = read(sock, b + len, sizeof(b) - len);
                while (n < 0 && errno == EINTR);
                if (n <= 0)
                        return 0;
                len += (size_t)n;
                if (proto_frame_len(b, len, &flen) == 0 && flen <= len)
                        return proto_msg_decode(b, flen, &m) == 0 && m.type == PROTO_HANDOFF;
                if (len == sizeof(b))
                        return 0;   /* an ERROR with a long reason: not the answer */
        }
}

/* The daemon serves the pusher on our stdin and stdout now. sshd ends the
 * session when we exit, so we stay, asleep, until the daemon closes our
 * socket (it is done with the connection, or it died), and hold nothing:
 * our copies of the pipes go, so their ends are the daemon's alone. */
static void sleep_until_closed(int sock) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        char b[64];

        if (null >= 0) {
                (void)dup2(null, STDIN_FILENO);
                (void)dup2(null, STDOUT_FILENO);
                close(null);
        }
        (void)malloc_trim(0);
        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                ssize_t n;

                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return;
                }
                n = read(sock, b, sizeof(b));
                if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                        return;
        }
}

/* Offer the daemon our stdin and stdout (SCM_RIGHTS), after the RELAY
 * frame (docs/DESIGN.md "Connections"). 1 handed over (and now done),
 * 0 not taken: copy, over a new connection (the daemon closes this one);
 * <0 the pusher left. */
static int handoff(int sock, const struct proto_wr *relay) {
        static const int stdio[FDPASS_MAX] = { STDIN_FILENO, STDOUT_FILENO };
        struct proto_msg m = { .type = PROTO_HANDOFF };
        struct proto_wr wr;
        int r;

        proto_wr_init(&wr);
        proto_put_bytes(&wr, relay->buf, relay->len);
        r = proto_wr_error(&wr) ? -ENOMEM : proto_msg_encode(&wr, &m);
        if (r == 0)
                r = fdpass_send(sock, wr.buf, wr.len, stdio, FDPASS_MAX);
        proto_wr_free(&wr);
        if (r < 0)
                return 0;   /* not offered (the daemon closed on us, say): copy */
        r = handoff_answer(sock);
        if (r == 1)
                sleep_until_closed(sock);
        return r;
}

int relay_main(const struct conf *c, const char *from) {
        struct proto_msg m = { .type = PROTO_RELAY };
        struct proto_wr wr;
        char why[400] = "";
        int sock = -1, r;

        signal(SIGPIPE, SIG_IGN);
        if ((r = reach(c, &sock, why, sizeof(why))) < 0) {
                refuse(c, why);
                return 1;
        }
        /* The first frame names the peer this key belongs to, so the daemon
         * can hold the remote side to it; the remote cannot send RELAY. */
        snprintf(m.node, sizeof(m.node), "%s", from ? from : "");
        proto_wr_init(&wr);
        r = proto_msg_encode(&wr, &m);
        if (r == 0 && wr.len > RELAY_BUF)
                r = -EMSGSIZE;
        /* Only pipes and sockets are offered (a daemon takes nothing else):
         * run by hand from a terminal, the relay copies. */
        if (r == 0 && (fdpass_stream_ok(STDIN_FILENO, false) < 0 || fdpass_stream_ok(STDOUT_FILENO, true) < 0)) {
                r = pump(STDIN_FILENO, STDOUT_FILENO, sock, wr.buf, wr.len);
        } else if (r == 0 && (r = handoff(sock, &wr)) == 0) {
                /* Not taken: the old way, copying, on a fresh connection
                 * (the refused one is closed by the daemon). */
                close(sock);
                sock = -1;
                if ((r = reach(c, &sock, why, sizeof(why))) < 0) {
                        refuse(c, why);
                        proto_wr_free(&wr);
                        return 1;
                }
                r = pump(STDIN_FILENO, STDOUT_FILENO, sock, wr.buf, wr.len);
        } else if (r == 1) {
                r = 0;
        }
        proto_wr_free(&wr);
        if (sock >= 0)
                close(sock);
        if (r < 0 && r != -EPIPE) {
                fprintf(stderr, "sessyncd --serve: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
