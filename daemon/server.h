/* The socket server: the daemon's unix socket, where the relay
 * (`sessyncd --serve`, daemon/relay.c) brings a peer's SSH channel, and
 * where --status asks. Every connection speaks frames; its
 * first frame says what it is:
 *   RELAY       a relay; then the peer's HELLO, our HELLO and inventory,
 *               then FILE/DELTA/TOUCH/DELETE (answered by ACK) and PING.
 *   STATUS_REQ  answered with one STATUS frame, then closed.
 * A malformed or unexpected frame closes that connection with a logged
 * reason (and an ERROR frame to the other side); nothing else is affected.
 *
 * Replies are written only from server_flush(), which the daemon calls
 * after tombstones are synced to disk: an ACK never overtakes the
 * durability of what it acknowledges.
 */
#ifndef SESSYNC_DAEMON_SERVER_H
#define SESSYNC_DAEMON_SERVER_H

#include <stddef.h>

struct loop;
struct node;
struct peer;
struct server;

/* Bind the config's socket (mode 0660; a stale socket is replaced, a live one is
 * -EADDRINUSE: another daemon runs). */
int server_new(struct node *n, struct loop *l, struct peer *const *peers, struct server **ret);
void server_free(struct server *s);
void server_flush(struct server *s);
/* Connections open now (the --serve stand-in ends when none is left). */
size_t server_n_conns(const struct server *s);

#endif
