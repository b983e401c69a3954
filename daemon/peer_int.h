/* Internal to peer.c (the connection and its state machine) and
 * peer_msg.c (what the peer's frames mean): the peer object. peer_msg.c
 * only reads and answers; every state transition is peer.c's. */
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
#define PEER_SHARE_BYTES (256u << 10)   /* read per drive(), then the loop goes on */
#define PEER_ERR_LINES 20                /* remote stderr lines logged per PEER_ERR_MS */
#define PEER_ERR_MS 10000
#define PEER_INV_ENTRIES_MAX (1u << 20) /* entries in one inventory: 20 times a big node's */
#define PEER_PING_MS 5000
#define PEER_DEAD_MS 20000              /* silence after which the link is dead */
#define PEER_CONNECT_MS 15000
#define PEER_BACKOFF_MIN_MS 500
#define PEER_BACKOFF_MAX_MS 30000

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
        size_t inv_entries;             /* in the running inventory so far */
        uint64_t err_ms;                /* remote stderr: this period began then, */
        uint64_t err_lines, err_quiet;  /* lines in it, and those not logged */
        struct proto_wr in, out;
        uint32_t seq;
        uint64_t sent_ms[PEER_WINDOW];  /* ring: send time of each frame in flight */
        uint32_t sent_seq[PEER_WINDOW]; /* ring: its sequence number (acks come in order) */
        uint32_t fl_head, in_flight;
        uint64_t dirty_since_ms;
        uint64_t hello_ns;
        unsigned seed;
        char last_error[512];
        bool apply_error;                       /* last_error is about one file, */
        char apply_error_name[PROTO_NAME_MAX + 1];   /* this one */
};

static inline const char *peer_name(const struct peer *p) {
        return p->cp->name;
}

/* peer_msg.c: the handlers. Each returns 0 to go on, or a negative errno
 * with why filled; peer.c then takes the connection down with that reason. */
#define PEER_WHY_MAX 300
int peer_msg_hello(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]);
/* An INV frame of the running catch-up. */
int peer_msg_inv(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]);
/* INV_END: returns how many entries this catch-up found to send. */
size_t peer_msg_inv_end(struct peer *p);
/* An ACK: it must answer the oldest frame in flight (acks come in order:
 * proto/PROTOCOL.md "Sequence numbers"). */
int peer_msg_ack(struct peer *p, const struct proto_msg *m, char why[PEER_WHY_MAX]);

#endif
