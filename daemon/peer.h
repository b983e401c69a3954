/* One peer, seen from the pushing side: a persistent SSH connection
 * (peer_ssh) carrying our changes to the peer's daemon.
 *
 *   DOWN --timer--> CONNECTING --ssh ready, HELLO sent--> HELLO
 *   HELLO --peer's HELLO checked--> INV --INV_END--> READY
 *   any --error, EOF, silence--> DOWN (reconnect with backoff)
 *
 * On every (re)connect the peer sends its inventory; whatever we hold that
 * beats what it has (or that it lacks) goes into its dirty set (docs/DESIGN.md
 * "Catch-up at connect"). In READY, peer_flush sends dirty entries while fewer than
 * PEER_WINDOW frames are unacknowledged. PINGs every few seconds measure
 * round trip and keep a dead connection from going unnoticed.
 */
#ifndef SESSYNC_DAEMON_PEER_H
#define SESSYNC_DAEMON_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct loop;
struct node;
struct peer;

enum peer_state {
        PEER_DOWN,
        PEER_CONNECTING,
        PEER_HELLO,
        PEER_INV,
        PEER_READY,
};

int peer_new(struct node *n, const struct conf *c, struct loop *l, size_t idx, struct peer **ret);
void peer_free(struct peer *p);
/* Reload (docs/DESIGN.md "Reload"): the same peer (conf_peer_same) is now
 * c's peer idx. Its connection and everything in flight stay. */
void peer_set_conf(struct peer *p, const struct conf *c, size_t idx);

/* Connect now (the daemon at start; --full-sync). With once, a failure is
 * final (peer_failed) instead of a reconnect. */
void peer_start(struct peer *p, bool once);
/* The peer just connected to us: it is up, so if our connection to it is
 * down and waiting out a backoff, try now (a node that comes back gets its
 * peers' catch-up at once, not after their backoff of up to 30 s). */
void peer_kick(struct peer *p);
/* Send what is dirty, within the window, and write out. Once per turn. */
void peer_flush(struct peer *p);

enum peer_state peer_state(const struct peer *p);
bool peer_failed(const struct peer *p);
/* READY with nothing dirty, delayed or unacknowledged. */
bool peer_idle(const struct peer *p);
uint64_t peer_lag_ms(const struct peer *p);
uint32_t peer_in_flight(const struct peer *p);
const char *peer_last_error(const struct peer *p);

#endif
