#include "daemon/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/log.h"
#include "proto/msg.h"

/* sd_listen_fds(3): the first fd systemd passes. */
#define SOCK_LISTEN_FDS_START 3

/* The socket file is made 0660 by the umask at bind: no chmod by path
 * afterwards, which would follow a symlink put in its place. */
static int bind_masked(int fd, const struct sockaddr_un *sa) {
        mode_t old_mask = umask(0117);
        int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;

        umask(old_mask);
        return r;
}

int sock_bind(const char *path, gid_t *ret_gid) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        char *dir = NULL;
        int fd = -1, r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        dir = strdup(path);
        if (dir) {
                (void)mkdir(dirname(dir), 0750);
                free(dir);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if ((r = bind_masked(fd, &sa)) < 0) {
                int probe;

                if (r != -EADDRINUSE)
                        goto fail;
                /* A socket file is left over: in use only if someone answers. */
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(probe);
                        r = -EADDRINUSE;
                        goto fail;
                }
                if (probe >= 0)
                        close(probe);
                (void)unlink(path);
                if ((r = bind_masked(fd, &sa)) < 0)
                        goto fail;
        }
        /* The SSH account that runs --serve reaches us through the group. */
        if (listen(fd, 64) < 0) {
                r = -errno;
                goto fail;
        }
        /* lstat: the name is ours now, and is not followed. */
        *ret_gid = lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_gid : getegid();
        return fd;
fail:
        close(fd);
        return r;
}

/* A decimal environment value, whole: -1 if absent or not a number. */
static long env_long(const char *name) {
        const char *v = getenv(name);
        char *end;
        long n;

        if (!v || !*v)
                return -1;
        errno = 0;
        n = strtol(v, &end, 10);
        return errno || *end || n < 0 ? -1 : n;
}

/* The socket systemd passed (docs/DESIGN.md "The socket"), or -ENOENT if it
 * passed none to this process. A socket that is not the configured one is
 * refused, -EBADFD, with the reason logged: serving on another path would
 * leave the relays knocking at a door nobody opens. */
static int sock_inherit(const char *path, gid_t *ret_gid) {
        long pid = env_long("LISTEN_PID"), n = env_long("LISTEN_FDS");
        int fd = SOCK_LISTEN_FDS_START, domain = 0, type = 0, listening = 0, fl;
        struct sockaddr_un sa;
        socklen_t len = sizeof(sa), ilen = sizeof(int);
        struct stat st;
        size_t plen;

        /* Never for a child (the --serve stand-in is one, so is anything a
         * child execs): only the process systemd named takes them. */
        (void)unsetenv("LISTEN_PID");
        (void)unsetenv("LISTEN_FDS");
        (void)unsetenv("LISTEN_FDNAMES");
        if (pid != (long)getpid() || n <= 0)
                return -ENOENT;
        if (n != 1) {
                log_error("socket \"%s\": systemd passed %ld sockets (LISTEN_FDS); sessyncd takes exactly one, "
                          "its socket: one ListenStream= in sessyncd.socket", path, n);
                return -EBADFD;
        }
        memset(&sa, 0, sizeof(sa));
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &ilen) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) < 0 || domain != AF_UNIX || type != SOCK_STREAM) {
                log_error("socket \"%s\": what systemd passed (fd %d) is not a unix stream socket; sessyncd.socket "
                          "needs ListenStream=%s", path, fd, path);
                return -EBADFD;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) < 0 || !listening) {
                log_error("socket \"%s\": the socket systemd passed (fd %d) is not listening (Accept=yes?); "
                          "sessyncd.socket needs Accept=no", path, fd);
                return -EBADFD;
        }
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || len <= offsetof(struct sockaddr_un, sun_path) ||
            sa.sun_path[0] == '\0')
                plen = 0;
        else
                plen = strnlen(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        if (plen != strlen(path) || memcmp(sa.sun_path, path, plen) != 0) {
                char got[sizeof(sa.sun_path) + 1];

                snprintf(got, sizeof(got), "%.*s", (int)plen, sa.sun_path);
                log_error("socket \"%s\": the socket systemd passed (fd %d) is bound to \"%s\", not to the "
                          "configured socket: make ListenStream= in sessyncd.socket and socket in the config the "
                          "same path", path, fd, plen ? got : "(no path)");
                return -EBADFD;
        }
        /* The daemon execs nothing, but a socket never leaks into what it
         * might; and the accept loop takes connections until EAGAIN. */
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
            fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        /* SocketGroup= made the file's group; the same group as sock_bind's
         * file has, and the one sock_client_allowed admits. */
        *ret_gid = lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) ? st.st_gid : getegid();
        log_info("socket \"%s\": passed by systemd (socket activation)", path);
        return fd;
}

int sock_open(const char *path, gid_t *ret_gid, bool *ret_from_systemd) {
        int fd = sock_inherit(path, ret_gid);

        *ret_from_systemd = fd >= 0;
        return fd == -ENOENT ? sock_bind(path, ret_gid) : fd;
}

/* The file mode says the same as this check; the check holds even if the
 * mode, or a directory above, is too open. */
bool sock_client_allowed(int fd, gid_t gid, struct ucred *ret_cred) {
        socklen_t len = sizeof(*ret_cred);
        gid_t groups[256];
        socklen_t glen = sizeof(groups);

        memset(ret_cred, 0, sizeof(*ret_cred));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret_cred, &len) < 0)
                return false;
        if (ret_cred->uid == 0 || ret_cred->uid == geteuid() || ret_cred->gid == gid)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
                for (size_t i = 0; i < glen / sizeof(groups[0]); i++)
                        if (groups[i] == gid)
                                return true;
        return false;
}

void sock_refuse(int fd) {
        static const char why[] = "not allowed: only root, sessyncd's user and members of the socket's group may "
                                  "use this socket";
        struct proto_msg m = { .type = PROTO_ERROR, .data = (const uint8_t *)why, .data_len = sizeof(why) - 1 };
        struct proto_wr wr;

        proto_wr_init(&wr);
        if (proto_msg_encode(&wr, &m) == 0)
                (void)send(fd, wr.buf, wr.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        proto_wr_free(&wr);
}
