#include "daemon/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/loop.h"
#include "daemon/node.h"
#include "lib/conf.h"

struct health {
        struct loop *loop;
        struct node *node;
        int fd;
        struct loop_fd *reg;
};

/* Answer and close at once: the words fit any socket buffer, and a client
 * that does not read them loses only its own answer. HAProxy leaves DRAIN
 * only on "ready", and "drain" alone does not lift a DOWN: hence the
 * pairs. */
static void on_accept(struct loop *l, uint32_t events, void *ctx) {
        struct health *h = ctx;

        (void)l;
        (void)events;
        for (;;) {
                int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                const char *word;

                if (fd < 0)
                        return;
                /* Not ready: no user at all, unless PHP wrote here while no
                 * daemon ran (sessyncd killed, web server up): then those
                 * users' newest data is here, not on the peers, and they
                 * stay (drain: sticky users only, no new ones). */
                word = node_ready(h->node) ? "up ready\n" : node_changed_at_start(h->node) ? "up drain\n" : "down\n";
                (void)send(fd, word, strlen(word), MSG_DONTWAIT | MSG_NOSIGNAL);
                (void)shutdown(fd, SHUT_RDWR);
                close(fd);
        }
}

int health_new(struct loop *l, struct node *n, const char *addr, struct health **ret) {
        struct sockaddr_storage ss = { 0 };
        struct health *h = NULL;
        char host[64];
        uint16_t port;
        socklen_t len;
        int one = 1, r;

        if ((r = conf_parse_listen(addr, host, sizeof(host), &port)) < 0)
                return r;
        if (strchr(host, ':')) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(port);
                (void)inet_pton(AF_INET6, host, &s6->sin6_addr);
                len = sizeof(*s6);
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

                s4->sin_family = AF_INET;
                s4->sin_port = htons(port);
                (void)inet_pton(AF_INET, host, &s4->sin_addr);
                len = sizeof(*s4);
        }
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->loop = l;
        h->node = n;
        h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (h->fd < 0) {
                r = -errno;
                goto fail;
        }
        (void)setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(h->fd, (struct sockaddr *)&ss, len) < 0 || listen(h->fd, 64) < 0) {
                r = -errno;
                goto fail;
        }
        if ((r = loop_add_fd(l, h->fd, EPOLLIN, on_accept, h, &h->reg)) < 0)
                goto fail;
        *ret = h;
        return 0;
fail:
        health_free(h);
        return r;
}

void health_free(struct health *h) {
        if (!h)
                return;
        loop_del_fd(h->loop, h->reg);
        if (h->fd >= 0)
                close(h->fd);
        free(h);
}
