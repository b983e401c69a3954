/* daemon/fdpass: SCM_RIGHTS over a socketpair, with pipes, as the relay
 * hands its stdin and stdout to the daemon (docs/DESIGN.md "Connections"):
 * what arrives, what is refused, and that nothing refused stays open. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/fdpass.h"

static int n_open(void) {
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        cr_assert_not_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* Raw: n fds on one message, as a client other than the relay may send. */
static void send_raw(int sock, const int *fds, size_t n) {
        char ctl[CMSG_SPACE(64 * sizeof(int))] = { 0 };
        struct iovec iov = { .iov_base = "x", .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                             .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
        cr_assert_eq(sendmsg(sock, &mh, 0), 1, "sendmsg: %s", strerror(errno));
}

Test(fdpass, two_pipes_arrive_and_work) {
        int sp[2], in[2], out[2], got[FDPASS_MAX];
        size_t n = 0;
        char buf[64];
        ssize_t r;

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        cr_assert_eq(pipe(in), 0);
        cr_assert_eq(pipe(out), 0);
        cr_assert_eq(fdpass_send(sp[0], "frames", 6, (int[]){ in[0], out[1] }, 2), 0);
        r = fdpass_recv(sp[1], buf, sizeof(buf), got, &n);
        cr_assert_eq(r, 6);
        cr_assert_eq(memcmp(buf, "frames", 6), 0);
        cr_assert_eq(n, 2);
        cr_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC, "not O_CLOEXEC");
        cr_assert(fcntl(got[1], F_GETFD) & FD_CLOEXEC, "not O_CLOEXEC");
        cr_assert_eq(fdpass_stream_ok(got[0], false), 0);
        cr_assert_eq(fdpass_stream_ok(got[1], true), 0);
        /* The same pipes: what sshd writes, the daemon reads, and back. */
        cr_assert_eq(write(in[1], "hello", 5), 5);
        cr_assert_eq(read(got[0], buf, sizeof(buf)), 5);
        cr_assert_eq(write(got[1], "ack", 3), 3);
        cr_assert_eq(read(out[0], buf, sizeof(buf)), 3);
        cr_assert_eq(memcmp(buf, "ack", 3), 0);
        /* No fds with the next bytes: plain data. */
        cr_assert_eq(write(sp[0], "more", 4), 4);
        cr_assert_eq(fdpass_recv(sp[1], buf, sizeof(buf), got, &n), 4);
        cr_assert_eq(n, 2);
        for (int i = 0; i < 2; i++) {
                close(got[i]);
                close(in[i]);
                close(out[i]);
                close(sp[i]);
        }
}

/* More than FDPASS_MAX in one message, in two messages, or more than the
 * control buffer holds (MSG_CTRUNC): refused, and every fd that came is
 * closed; the ones already taken stay. */
Test(fdpass, too_many_fds_are_refused_and_closed) {
        int sp[2], p[2], got[FDPASS_MAX], many[40];
        int before;
        size_t n = 0;
        char buf[16];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        cr_assert_eq(pipe(p), 0);
        before = n_open();
        send_raw(sp[0], (int[]){ p[0], p[1], p[0] }, 3);
        cr_assert_eq(fdpass_recv(sp[1], buf, sizeof(buf), got, &n), -ETOOMANYREFS);
        cr_assert_eq(n, 0);
        cr_assert_eq(n_open(), before, "fds of a refused message left open");

        for (int i = 0; i < 40; i++)
                many[i] = p[i % 2];
        send_raw(sp[0], many, 40);
        cr_assert_eq(fdpass_recv(sp[1], buf, sizeof(buf), got, &n), -ETOOMANYREFS);
        cr_assert_eq(n, 0);
        cr_assert_eq(n_open(), before, "fds of a truncated message left open");

        send_raw(sp[0], p, 2);
        cr_assert_eq(fdpass_recv(sp[1], buf, sizeof(buf), got, &n), 1);
        cr_assert_eq(n, 2);
        send_raw(sp[0], p, 1);
        cr_assert_eq(fdpass_recv(sp[1], buf, sizeof(buf), got, &n), -ETOOMANYREFS);
        cr_assert_eq(n, 2, "the fds taken before are kept");
        cr_assert_eq(n_open(), before + 2);
        close(got[0]);
        close(got[1]);
        for (int i = 0; i < 2; i++) {
                close(p[i]);
                close(sp[i]);
        }
}

/* Only byte streams, each open for its direction: never a regular file or
 * a device, whoever in the socket's group passes it. */
Test(fdpass, only_pipes_and_sockets_open_the_right_way) {
        char path[] = "/tmp/sessync-fdpass.XXXXXX";
        int p[2], sp[2], file = mkstemp(path), dev = open("/dev/null", O_RDWR);

        cr_assert_geq(file, 0);
        unlink(path);
        cr_assert_geq(dev, 0);
        cr_assert_eq(pipe(p), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        cr_assert_eq(fdpass_stream_ok(p[0], false), 0);
        cr_assert_eq(fdpass_stream_ok(p[1], true), 0);
        cr_assert_eq(fdpass_stream_ok(sp[0], false), 0);
        cr_assert_eq(fdpass_stream_ok(sp[0], true), 0);
        cr_assert_eq(fdpass_stream_ok(p[0], true), -EBADF, "a read end taken for writing");
        cr_assert_eq(fdpass_stream_ok(p[1], false), -EBADF, "a write end taken for reading");
        cr_assert_eq(fdpass_stream_ok(file, false), -EINVAL, "a regular file taken");
        cr_assert_eq(fdpass_stream_ok(dev, true), -EINVAL, "a device taken");
        cr_assert_eq(fdpass_stream_ok(9999, false), -EBADF);
        close(file);
        close(dev);
        for (int i = 0; i < 2; i++) {
                close(p[i]);
                close(sp[i]);
        }
}
