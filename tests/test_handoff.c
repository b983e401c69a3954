/* daemon/server: the relay's hand-off (docs/DESIGN.md "Connections",
 * "Inbound connections"): RELAY, then HANDOFF with the relay's stdin and
 * stdout, on a real unix socket and the real loop, with the node of
 * fixture_node.h ("a", peers "b" and "c"); then the peer is served on the
 * pipes. What is not a relay's pair of byte streams is refused. */
#include "fixture_server.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "daemon/fdpass.h"
#include "daemon/server.h"
#include "proto/buf.h"
#include "proto/msg.h"

/* What one fd has said: frames by type, the last ERROR, EOF. */
struct rd {
        int fd;
        struct proto_wr in;
        int n[PROTO_TYPE_MAX_ + 1];
        bool eof;
        char error[256];
};

static void rd_init(struct rd *r, int fd) {
        memset(r, 0, sizeof(*r));
        r->fd = fd;
        proto_wr_init(&r->in);
        cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

static void rd_read(struct rd *r) {
        for (;;) {
                uint8_t buf[65536];
                ssize_t n = read(r->fd, buf, sizeof(buf));
                size_t off = 0, flen;

                if (n == 0 || (n < 0 && errno == ECONNRESET)) {
                        r->eof = true;
                        return;
                }
                if (n < 0) {
                        cr_assert(errno == EAGAIN, "read: %s", strerror(errno));
                        return;
                }
                proto_put_bytes(&r->in, buf, (size_t)n);
                while (proto_frame_len(r->in.buf + off, r->in.len - off, &flen) == 0 && flen <= r->in.len - off) {
                        struct proto_msg m;

                        cr_assert_eq(proto_msg_decode(r->in.buf + off, flen, &m), 0);
                        r->n[m.type]++;
                        if (m.type == PROTO_ERROR)
                                snprintf(r->error, sizeof(r->error), "%.*s", (int)m.data_len, (const char *)m.data);
                        off += flen;
                }
                proto_wr_consume(&r->in, off);
        }
}

/* Read r for up to n iterations, until pred holds. */
static void rd_until(struct rd *r, int n, bool (*pred)(const struct rd *)) {
        for (int i = 0; i < n && !pred(r); i++) {
                iterate(1);
                rd_read(r);
        }
}

static bool got_eof(const struct rd *r) {
        return r->eof;
}

static bool got_handoff(const struct rd *r) {
        return r->eof || r->n[PROTO_HANDOFF] > 0 || r->n[PROTO_ERROR] > 0;
}

static bool got_inv_end(const struct rd *r) {
        return r->eof || r->n[PROTO_INV_END] > 0 || r->n[PROTO_ERROR] > 0;
}

static int cl_connect(void) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
        cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
        return fd;
}

static void encode(struct proto_wr *wr, uint8_t type) {
        struct proto_msg m = { .type = type, .version = PROTO_VERSION, .clock_ns = 1 };

        if (type == PROTO_HELLO) {
                strcpy(m.node, "b");
                strcpy(m.to, "a");
        }
        cr_assert_eq(proto_msg_encode(wr, &m), 0);
}

/* RELAY and HANDOFF (and extra, when given) with n fds, as the relay sends
 * them; returns the socket. */
static int offer(const int *fds, size_t n, uint8_t extra) {
        struct proto_wr wr;
        int fd = cl_connect();

        proto_wr_init(&wr);
        encode(&wr, PROTO_RELAY);
        encode(&wr, PROTO_HANDOFF);
        if (extra)
                encode(&wr, extra);
        if (n)
                cr_assert_eq(fdpass_send(fd, wr.buf, wr.len, fds, n), 0);
        else
                cr_assert_eq(write(fd, wr.buf, wr.len), (ssize_t)wr.len);
        proto_wr_free(&wr);
        return fd;
}

static void put_frame(int fd, uint8_t type) {
        struct proto_wr wr;

        proto_wr_init(&wr);
        encode(&wr, type);
        cr_assert_eq(write(fd, wr.buf, wr.len), (ssize_t)wr.len);
        proto_wr_free(&wr);
}

TestSuite(handoff, .init = srv_setup, .fini = srv_teardown, .timeout = 30);

/* The relay's pipes become the connection: HANDOFF answered on the socket,
 * then HELLO, the inventory and PONG on the stdout pipe; sshd's EOF on
 * stdin ends it, and the socket closes, which wakes the relay to exit. */
Test(handoff, the_peer_is_served_on_the_pipes) {
        int in[2], out[2];
        struct rd s, o;

        put_file("sess_ho1", "a|i:1;", 1700000000);
        check("sess_ho1");
        cr_assert_eq(pipe(in), 0);
        cr_assert_eq(pipe(out), 0);
        rd_init(&s, offer((int[]){ in[0], out[1] }, 2, 0));
        close(in[0]);
        close(out[1]);
        rd_init(&o, out[0]);
        rd_until(&s, 5, got_handoff);
        cr_assert_eq(s.n[PROTO_HANDOFF], 1, "no HANDOFF answer (error: \"%s\")", s.error);
        cr_assert(!s.eof, "the relay's socket closed after the hand-off");
        put_frame(in[1], PROTO_HELLO);
        rd_until(&o, 10, got_inv_end);
        cr_assert_eq(o.n[PROTO_HELLO], 1, "no HELLO on the stdout pipe (error: \"%s\")", o.error);
        cr_assert_eq(o.n[PROTO_INV_END], 1);
        put_frame(in[1], PROTO_PING);
        for (int i = 0; i < 5 && !o.n[PROTO_PONG]; i++) {
                iterate(1);
                rd_read(&o);
        }
        cr_assert_eq(o.n[PROTO_PONG], 1);
        rd_read(&s);
        cr_assert_eq(s.n[PROTO_HANDOFF] + s.n[PROTO_HELLO] + s.n[PROTO_PONG], 1, "replies went to the socket");
        cr_assert_eq(server_n_conns(srv), 1);
        close(in[1]);   /* the pusher left: sshd closes the relay's stdin */
        rd_until(&s, 5, got_eof);
        cr_assert(s.eof, "the relay's socket stays open after the pusher left");
        rd_until(&o, 2, got_eof);
        cr_assert(o.eof, "the stdout pipe stays open after the pusher left");
        cr_assert_eq(server_n_conns(srv), 0);
        close(s.fd);
        close(o.fd);
        proto_wr_free(&s.in);
        proto_wr_free(&o.in);
}

/* The relay killed (its socket closes) while sshd keeps the pipes: the
 * daemon lets them go, so sshd sees EOF and ends the session. */
Test(handoff, the_relay_ending_ends_the_connection) {
        int in[2], out[2];
        struct rd s, o;

        cr_assert_eq(pipe(in), 0);
        cr_assert_eq(pipe(out), 0);
        rd_init(&s, offer((int[]){ in[0], out[1] }, 2, 0));
        close(in[0]);
        close(out[1]);
        rd_init(&o, out[0]);
        rd_until(&s, 5, got_handoff);
        cr_assert_eq(s.n[PROTO_HANDOFF], 1);
        put_frame(in[1], PROTO_HELLO);
        rd_until(&o, 10, got_inv_end);
        cr_assert_eq(o.n[PROTO_HELLO], 1);
        close(s.fd);
        rd_until(&o, 5, got_eof);
        cr_assert(o.eof, "the daemon still holds the stdout pipe of a relay that ended");
        cr_assert_eq(server_n_conns(srv), 0);
        close(in[1]);
        close(o.fd);
        proto_wr_free(&s.in);
        proto_wr_free(&o.in);
}

/* A refused hand-off: ERROR on the socket, closed, nothing read from or
 * written to what was passed, and the daemon keeps serving. */
static void refused(const int *fds, size_t n, uint8_t extra, const char *why) {
        struct rd s;

        rd_init(&s, offer(fds, n, extra));
        rd_until(&s, 5, got_eof);
        cr_assert_eq(s.n[PROTO_HANDOFF], 0, "a hand-off taken that should be refused (%s)", why);
        cr_assert_eq(s.n[PROTO_ERROR], 1);
        cr_assert_str_eq(s.error, why);
        cr_assert(s.eof);
        cr_assert_eq(server_n_conns(srv), 0);
        close(s.fd);
        proto_wr_free(&s.in);
}

Test(handoff, a_regular_file_is_refused) {
        char path[128];
        int in[2], out[2], file;
        struct stat st;

        snprintf(path, sizeof(path), "%s/not-a-pipe", dir);
        file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert_geq(file, 0);
        cr_assert_eq(write(file, "secret", 6), 6);
        cr_assert_eq(lseek(file, 0, SEEK_SET), 0);
        cr_assert_eq(pipe(in), 0);
        cr_assert_eq(pipe(out), 0);
        refused((int[]){ file, out[1] }, 2, 0, "HANDOFF of an fd that is not a pipe or a socket");
        refused((int[]){ in[0], file }, 2, 0, "HANDOFF of an fd that is not a pipe or a socket");
        cr_assert_eq(lseek(file, 0, SEEK_CUR), 0, "the daemon read the file passed to it");
        cr_assert_eq(fstat(file, &st), 0);
        cr_assert_eq(st.st_size, 6, "the daemon wrote to the file passed to it");
        {
                int dev = open("/dev/null", O_RDWR | O_CLOEXEC);

                refused((int[]){ dev, dev }, 2, 0, "HANDOFF of an fd that is not a pipe or a socket");
                close(dev);
        }
        /* The pipe's ends the wrong way round. */
        refused((int[]){ out[1], in[0] }, 2, 0, "HANDOFF of an fd not open for its direction");
        close(file);
        for (int i = 0; i < 2; i++) {
                close(in[i]);
                close(out[i]);
        }
}

Test(handoff, other_than_two_fds_are_refused) {
        int in[2], out[2];

        cr_assert_eq(pipe(in), 0);
        cr_assert_eq(pipe(out), 0);
        refused(NULL, 0, 0, "HANDOFF without its two fds (stdin, stdout)");
        refused((int[]){ in[0] }, 1, 0, "HANDOFF without its two fds (stdin, stdout)");
        /* fdpass_send takes at most 2: three go raw. */
        {
                char ctl[CMSG_SPACE(3 * sizeof(int))] = { 0 };
                struct proto_wr wr;
                struct iovec iov;
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                struct rd s;

                proto_wr_init(&wr);
                encode(&wr, PROTO_RELAY);
                encode(&wr, PROTO_HANDOFF);
                iov.iov_base = wr.buf;
                iov.iov_len = wr.len;
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(3 * sizeof(int));
                memcpy(CMSG_DATA(cm), (int[]){ in[0], out[1], in[0] }, 3 * sizeof(int));
                rd_init(&s, cl_connect());
                cr_assert_eq(sendmsg(s.fd, &mh, 0), (ssize_t)wr.len);
                rd_until(&s, 5, got_eof);
                cr_assert_eq(s.n[PROTO_HANDOFF], 0);
                cr_assert_str_eq(s.error, "more fds than a relay's stdin and stdout");
                close(s.fd);
                proto_wr_free(&s.in);
                proto_wr_free(&wr);
        }
        /* Bytes after the HANDOFF on the socket would be lost. */
        refused((int[]){ in[0], out[1] }, 2, PROTO_PING, "bytes after HANDOFF");
        /* The ERROR went to the socket and nothing to the pipe. */
        {
                char b[16];

                cr_assert_eq(fcntl(out[0], F_SETFL, O_NONBLOCK), 0);
                cr_assert_eq(read(out[0], b, sizeof(b)), -1);
                cr_assert_eq(errno, EAGAIN);
        }
        for (int i = 0; i < 2; i++) {
                close(in[i]);
                close(out[i]);
        }
}

/* Without HANDOFF a relay is served on the socket as before (a relay older
 * than the hand-off), and fds passed with a HELLO are not taken. */
Test(handoff, a_relay_that_copies_is_served_as_before) {
        struct proto_wr wr;
        int in[2];
        struct rd s;

        cr_assert_eq(pipe(in), 0);
        proto_wr_init(&wr);
        encode(&wr, PROTO_RELAY);
        encode(&wr, PROTO_HELLO);
        rd_init(&s, cl_connect());
        cr_assert_eq(fdpass_send(s.fd, wr.buf, wr.len, in, 2), 0);
        rd_until(&s, 10, got_inv_end);
        cr_assert_eq(s.n[PROTO_HELLO], 1, "error: %s", s.error);
        cr_assert_eq(s.n[PROTO_HANDOFF], 0);
        /* The daemon holds no copy of the pipe: its write end closes, the
         * read end sees EOF. */
        close(in[1]);
        cr_assert_eq(fcntl(in[0], F_SETFL, O_NONBLOCK), 0);
        {
                char b[4];

                cr_assert_eq(read(in[0], b, sizeof(b)), 0, "the daemon kept fds passed with a HELLO");
        }
        close(in[0]);
        close(s.fd);
        proto_wr_free(&s.in);
        proto_wr_free(&wr);
}
