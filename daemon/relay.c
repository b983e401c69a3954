#include "daemon/relay.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/conf.h"
#include "lib/io.h"
#include "proto/msg.h"

/* Copy what is readable on from to to. 0 on EOF, 1 on data, <0 on error. */
static int pump(int from, int to) {
        char buf[64 * 1024];
        ssize_t n;

        do
                n = read(from, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
        return io_write_all(to, buf, (size_t)n) < 0 ? -EPIPE : 1;
}

int relay_main(const struct conf *c, const char *from) {
        struct proto_msg m = { .type = PROTO_RELAY };
        struct proto_wr wr;
        bool in_open = true;
        int sock = -1, r;

        signal(SIGPIPE, SIG_IGN);
        if ((r = io_unix_connect(c->socket, &sock)) < 0) {
                fprintf(stderr, "sessyncd --serve: cannot reach the daemon at %s: %s (is sessyncd running on \"%s\"?)\n",
                        c->socket, strerror(-r), c->name);
                return 1;
        }
        /* The first frame names the peer this key belongs to, so the daemon
         * can hold the remote side to it; the remote cannot send SERVE. */
        snprintf(m.node, sizeof(m.node), "%s", from ? from : "");
        proto_wr_init(&wr);
        r = proto_msg_encode(&wr, &m);
        if (r == 0)
                r = io_write_all(sock, wr.buf, wr.len);
        proto_wr_free(&wr);
        if (r < 0) {
                fprintf(stderr, "sessyncd --serve: %s\n", strerror(-r));
                close(sock);
                return 1;
        }
        for (;;) {
                struct pollfd pfd[2] = { { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
                                         { .fd = sock, .events = POLLIN } };

                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pfd[0].revents) {
                        r = pump(STDIN_FILENO, sock);
                        if (r <= 0) {
                                in_open = false;
                                (void)shutdown(sock, SHUT_WR);
                                if (r < 0)
                                        break;
                        }
                }
                if (pfd[1].revents) {
                        r = pump(sock, STDOUT_FILENO);
                        if (r <= 0)
                                break;
                }
        }
        close(sock);
        return 0;
}
