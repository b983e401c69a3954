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
 * What any connection can make the daemon hold or do is bounded
 * (docs/DESIGN.md "Inbound connections", "Bounds"): separate pools for
 * connections that have sent nothing, relays without a HELLO, --status
 * answers and one slot per configured peer; frames of 4 KiB until a HELLO
 * is accepted; frames dispatched one at a time, none while the replies
 * after the inventory in flight pass 1 MiB; one inventory in flight per
 * connection and, after a burst of 4, one a second per peer; a share of
 * each loop turn per connection.
 *
 * Replies are written only from server_flush(), which the daemon calls
 * after tombstones are synced to disk: an ACK never overtakes the
 * durability of what it acknowledges.
 */
#ifndef SESSYNC_DAEMON_SERVER_H
#define SESSYNC_DAEMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct node;
struct peer;
struct server;

/* Take the config's socket from systemd, or bind it (mode 0660; a stale
 * socket is replaced, a live one is -EADDRINUSE: another daemon runs); see
 * sock_open. */
int server_new(struct node *n, struct loop *l, struct peer *const *peers, struct server **ret);
/* The socket file is this server's to remove at exit: it bound it, systemd
 * did not pass it (systemd keeps listening there while the daemon is down). */
bool server_socket_ours(const struct server *s);
void server_free(struct server *s);
void server_flush(struct server *s);
/* The --serve stand-in (daemon/standin.c): STATUS_REQ is not answered
 * (there are no peer objects to report), the connection closes. */
void server_no_status(struct server *s);
/* Connections open now (the --serve stand-in ends when none is left). */
size_t server_n_conns(const struct server *s);
/* Reload (docs/DESIGN.md "Reload"), in two steps so that a reload is all or
 * nothing: server_reserve_peers allocates what n peers need (0 or
 * -ENOMEM), then server_set_conf, which cannot fail, switches: c and peers
 * replace the config and the daemon's peer array; new_of_old maps each old
 * peer index to its new one, or NODE_NO_PEER: that peer's connection to us
 * is closed. Call it while the old config is still alive. */
struct conf;
int server_reserve_peers(struct server *s, size_t n);
void server_set_conf(struct server *s, const struct conf *c, struct peer *const *peers, const size_t *new_of_old);

#endif
