/* The daemon's top level (daemon.c): build the node, the watcher, the socket
 * server and one peer per [peer] section on one loop, and run it. Also the
 * standalone --full-sync (fullsync.c), which builds the same objects
 * without watcher or server. */
#ifndef SESSYNC_DAEMON_DAEMON_H
#define SESSYNC_DAEMON_DAEMON_H

#include <stddef.h>

struct conf;

/* Run until SIGTERM/SIGINT. Returns the exit status (0 clean, 1 failure). */
int daemon_run(const struct conf *c);

/* Push everything each named peer (all if n == 0) lacks or has older; wait
 * for every acknowledgement; print one line per peer. Exit status 0 only if
 * every peer confirmed, 1 otherwise, 2 if a name is not a configured peer. */
int daemon_full_sync(const struct conf *c, char *const *names, size_t n);

#endif
