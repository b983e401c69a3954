/* The relay, `sessyncd --serve`: the forced command of the receiving
 * account's authorized_keys. It relays bytes between the SSH channel
 * (stdin/stdout) and the local daemon's unix socket (daemon/server.c) and
 * does nothing else: all policy is the daemon's. A separate process per SSH
 * connection, so blocking poll() is fine here. */
#ifndef SESSYNC_DAEMON_RELAY_H
#define SESSYNC_DAEMON_RELAY_H

#include <stddef.h>

struct conf;

/* Returns the process exit status (0, or 1 if the daemon is unreachable). */
int relay_main(const struct conf *c, const char *from);

#endif
