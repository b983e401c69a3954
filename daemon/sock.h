/* The daemon's unix socket as a file, and its door (docs/DESIGN.md "The
 * socket"): creating it without following a link, or taking it from
 * systemd, and who may come in. The
 * connections themselves, and what their frames mean, are server.c's. */
#ifndef SESSYNC_DAEMON_SOCK_H
#define SESSYNC_DAEMON_SOCK_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Bind and listen on path (mode 0660, by the umask at bind; its directory
 * created 0750 if missing). A stale socket file is replaced, a live one is
 * -EADDRINUSE (another daemon runs). Returns the fd and writes the socket
 * file's group to *ret_gid (ours, or its directory's if that is setgid), or
 * a negative errno. */
int sock_bind(const char *path, gid_t *ret_gid);

/* The daemon's socket: the one systemd passed (socket activation, the
 * sd_listen_fds(3) protocol: LISTEN_PID is ours, LISTEN_FDS=1, fd 3), if it
 * is an AF_UNIX stream socket listening on exactly path, made non-blocking
 * and close-on-exec; else, with nothing passed, sock_bind(path). The LISTEN_
 * variables are unset either way. Returns the fd, *ret_gid as sock_bind's,
 * and *ret_from_systemd (then the socket file is systemd's: never unlinked);
 * or a negative errno: -EBADFD for a passed socket that is not path's (the
 * reason is logged), sock_bind's otherwise. */
int sock_open(const char *path, gid_t *ret_gid, bool *ret_from_systemd);

/* May the client on fd use the socket: root, the daemon's own user, or a
 * member (primary or supplementary, SO_PEERCRED and SO_PEERGROUPS) of the
 * group gid? *ret_cred is the client's credentials, for the log (zeroed if
 * they cannot be read). */
bool sock_client_allowed(int fd, gid_t gid, struct ucred *ret_cred);

/* Tell a refused client why, in one ERROR frame it can print, without
 * waiting for it: a full socket buffer just loses the reason. */
void sock_refuse(int fd);

#endif
