#include "daemon/fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room for more fds than anyone may send, so that a few extra are received
 * here and closed (and a flood of them is MSG_CTRUNC, closed by the kernel);
 * either way the message is refused. */
#define FDPASS_ROOM 16

int fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                char b[CMSG_SPACE(FDPASS_MAX * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cm;
        size_t off = 0;
        ssize_t n;

        if (n_fds == 0 || n_fds > FDPASS_MAX || len == 0)
                return -EINVAL;
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        /* The fds went with the first byte; the rest is plain bytes. */
        for (off = (size_t)n; off < len; off += (size_t)n) {
                do
                        n = send(sock, (const char *)buf + off, len - off, MSG_NOSIGNAL);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        return -errno;
        }
        return 0;
}

ssize_t fdpass_recv(int sock, void *buf, size_t len, int *fds, size_t *ret_n) {
        union {
                char b[CMSG_SPACE(FDPASS_ROOM * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                             .msg_controllen = sizeof(ctl.b) };
        int got[FDPASS_ROOM];
        size_t n_got = 0;
        bool over = false;
        ssize_t n;

        do
                n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                size_t k;

                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
                        if (n_got < FDPASS_ROOM)
                                got[n_got++] = fd;
                        else
                                close(fd);   /* cannot happen: the buffer holds FDPASS_ROOM */
                }
        }
        if ((mh.msg_flags & MSG_CTRUNC) || *ret_n + n_got > FDPASS_MAX)
                over = true;
        for (size_t i = 0; i < n_got; i++) {
                if (over)
                        close(got[i]);
                else
                        fds[(*ret_n)++] = got[i];
        }
        return over ? -ETOOMANYREFS : n;
}

int fdpass_stream_ok(int fd, bool want_write) {
        struct stat st;
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode))
                return -EINVAL;
        if ((fl & O_ACCMODE) != O_RDWR && (fl & O_ACCMODE) != (want_write ? O_WRONLY : O_RDONLY))
                return -EBADF;
        return 0;
}
