/* The relay, `sessyncd --serve`: the forced command of the receiving
 * account's authorized_keys. It brings the SSH channel (stdin/stdout) to
 * the local daemon's unix socket (daemon/server.c) and does nothing else:
 * all policy is the daemon's. It hands stdin and stdout to the daemon
 * (SCM_RIGHTS, a HANDOFF frame) and sleeps until the daemon closes the
 * socket; a daemon that does not take them (an older one) gets the bytes
 * copied both ways instead (docs/DESIGN.md "Connections"). A separate
 * process per SSH connection, so blocking poll() is fine here. */
#ifndef SESSYNC_DAEMON_RELAY_H
#define SESSYNC_DAEMON_RELAY_H

#include <stddef.h>

struct conf;

/* Returns the process exit status (0, or 1 if the daemon is unreachable). */
int relay_main(const struct conf *c, const char *from);

#endif
