/* The daemon's unix socket as a file, and its door (docs/DESIGN.md "The
 * socket"): creating it without following a link, and who may come in. The
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

/* May the client on fd use the socket: root, the daemon's own user, or a
 * member (primary or supplementary, SO_PEERCRED and SO_PEERGROUPS) of the
 * group gid? *ret_cred is the client's credentials, for the log (zeroed if
 * they cannot be read). */
bool sock_client_allowed(int fd, gid_t gid, struct ucred *ret_cred);

/* Tell a refused client why, in one ERROR frame it can print, without
 * waiting for it: a full socket buffer just loses the reason. */
void sock_refuse(int fd);

#endif
