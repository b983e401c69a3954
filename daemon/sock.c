#include "daemon/sock.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/msg.h"

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
