/* fuzz_node's stand-in for daemon/peer_ssh.c (linked instead of it): the
 * outbound "SSH channel" is one end of a socketpair whose other end the
 * harness holds (fz.out_fd), so peer.c's state machine, peer_msg.c and the
 * node's sending side (node_send.c, node_sync.c's catch-up, node_ack) run
 * for real on frames the fuzzer writes as the peer. It is connected at
 * once: no TCP, no SSH, nothing leaves the process. */
#include "daemon/peer_ssh.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/node_harness.h"

struct peer_ssh {
        int fd;
        bool want_out;          /* a write met a full buffer */
};

int peer_ssh_new(const struct conf *c, const struct conf_peer *cp, struct peer_ssh **ret) {
        struct peer_ssh *s = calloc(1, sizeof(*s));
        int sv[2];

        (void)c;
        (void)cp;
        if (!s)
                return -ENOMEM;
        CHECK(fz.out_fd < 0);   /* one outbound connection per input */
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        s->fd = sv[0];
        fz.out_fd = sv[1];
        *ret = s;
        return 0;
}

void peer_ssh_free(struct peer_ssh *s) {
        if (!s)
                return;
        close(s->fd);
        free(s);
}

int peer_ssh_step(struct peer_ssh *s) {
        (void)s;
        return 0;
}

int peer_ssh_fd(const struct peer_ssh *s) {
        return s->fd;
}

uint32_t peer_ssh_events(const struct peer_ssh *s) {
        return EPOLLIN | (s->want_out ? EPOLLOUT : 0);
}

const char *peer_ssh_error(const struct peer_ssh *s) {
        (void)s;
        return "the fuzzer's end of the channel failed";
}

ssize_t peer_ssh_read(struct peer_ssh *s, void *buf, size_t len) {
        ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
        return n;
}

ssize_t peer_ssh_write(struct peer_ssh *s, const void *buf, size_t len) {
        ssize_t n = send(s->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        s->want_out = n < 0 && (errno == EAGAIN || errno == EINTR);
        if (n < 0)
                return s->want_out ? -EAGAIN : -errno;
        return n;
}

void peer_ssh_stderr(struct peer_ssh *s, void (*line_cb)(void *ctx, const char *line), void *ctx) {
        (void)s;
        (void)line_cb;
        (void)ctx;
}

/* Set-up the real peer_ssh.c does that a socketpair has no use for. */
void peer_ssh_report(const struct conf *c) {
        (void)c;
}

void peer_ssh_set_conf(struct peer_ssh *s, const struct conf *c, const struct conf_peer *cp) {
        (void)s;
        (void)c;
        (void)cp;
}

void peer_ssh_set_drain(struct peer_ssh *s) {
        (void)s;
}
