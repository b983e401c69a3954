/* Internal to peer.c (the connection) and peer_msg.c (what its frames
 * mean): the peer object. */
#ifndef SESSYNC_DAEMON_PEER_INT_H
#define SESSYNC_DAEMON_PEER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/peer.h"
#include "lib/conf.h"
#include "proto/buf.h"
#include "proto/msg.h"

struct loop;
struct loop_fd;
struct loop_timer;
struct node;
struct peer_ssh;

#define PEER_WINDOW 256                 /* unacknowledged frames */
#define PEER_OUT_MAX (4u << 20)         /* stop filling the output beyond this */
#define PEER_IN_MAX (PROTO_FRAME_MAX + (64u << 10))
#define PEER_PING_MS 5000
#define PEER_DEAD_MS 20000              /* silence after which the link is dead */
#define PEER_CONNECT_MS 15000
#define PEER_BACKOFF_MIN_MS 500
#define PEER_BACKOFF_MAX_MS 30000
#define PEER_BUSY_RETRY_MS 10
#define PEER_RETRY_MS 1000

struct peer {
        struct node *node;
        size_t idx;
        const struct conf *conf;
        const struct conf_peer *cp;
        struct loop *loop;
        enum peer_state state;
        bool once, failed;
        struct peer_ssh *ssh;
        struct loop_fd *reg;
        struct loop_timer *timer;
        uint64_t backoff_ms;
        uint64_t started_ms;
        uint64_t last_rx_ms, last_ping_ms;
        size_t rx_bytes;                /* read from the channel, ever */
        uint64_t last_resync_ms;
        bool resyncing;                 /* INV_REQ sent, INV_END not yet back */
        size_t catchup_found;           /* entries the running catch-up marked */
        struct proto_wr in, out;
        uint32_t seq;
        uint64_t sent_ms[PEER_WINDOW];  /* ring: send time of each frame in flight */
        uint32_t fl_head, in_flight;
        uint64_t dirty_since_ms;
        uint64_t hello_ns;
        unsigned seed;
        char last_error[512];
        bool apply_error;                       /* last_error is about one file, */
        char apply_error_name[PROTO_NAME_MAX + 1];   /* this one */
};

static inline const char *pname(const struct peer *p) {
        return p->cp->name;
}

/* Go DOWN: log reason (once while it repeats), drop the connection, arm
 * the reconnect backoff (or fail, with once). */
void peer_down(struct peer *p, const char *reason);
/* Append a frame to the output. */
void peer_queue(struct peer *p, const struct proto_msg *m);

/* peer_msg.c */
int peer_on_hello(struct peer *p, const struct proto_msg *m);
void peer_start_catchup(struct peer *p);
void peer_inv_entry(struct peer *p, const struct proto_inv_ent *ie);
/* Returns how many entries this catch-up found the peer lacks or holds older. */
size_t peer_finish_catchup(struct peer *p);
void peer_on_ack(struct peer *p, const struct proto_msg *m);

#endif
