/* Inside the socket server (daemon/server.h), shared by its three files,
 * lowest first: server_conn.c (a connection's slot, its closing, its
 * refusal, the rate-limited log line), server_msg.c (what each frame means
 * in each state), server.c (accepting, reading, writing, timeouts). No file
 * calls one above it. Included only by those three. */
#ifndef SESSYNC_DAEMON_SERVER_INT_H
#define SESSYNC_DAEMON_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/fdpass.h"
#include "proto/buf.h"
#include "proto/msg.h"

struct conf;
struct loop;
struct loop_fd;
struct loop_timer;
struct node;
struct peer;

/* What one connection may make the daemon hold, and for how long
 * (docs/DESIGN.md "Bounds", "Inbound connections"). The pools are
 * separate so that no class of connection can crowd out another: a flood
 * of unclassified sockets neither takes a peer's slot nor keeps --status
 * out, and each configured peer has exactly one slot of its own. */
#define SRV_NEW_MAX 16          /* connected, no whole first frame yet */
#define SRV_RELAY_MAX 16        /* RELAY read, HELLO not yet */
#define SRV_CLI_MAX 8           /* STATUS_REQ answered, the answer not yet written */
#define SRV_SMALL_FRAME 4096    /* any frame before a HELLO is accepted (RELAY, HELLO, STATUS_REQ) */
#define SRV_SMALL_READ 4096     /* one recv() before a HELLO is accepted */
#define SRV_PEER_FRAME (PROTO_FRAME_MAX + 4)
#define SRV_PEER_READ (64u << 10)
#define SRV_OUT_HIGH (1u << 20) /* no frame is dispatched while more is unwritten */
#define SRV_SHARE_BYTES (256u << 10)   /* read per connection per callback, */
#define SRV_SHARE_FRAMES 256           /* and frames dispatched, then the loop goes on */
#define SRV_ACCEPT_BATCH 16
#define SRV_FIRST_MS 2000       /* a first frame comes at once from the relay and the CLI */
#define SRV_HELLO_MS 5000       /* the pusher's HELLO is on the channel before the relay starts */
#define SRV_CLOSING_MS 5000     /* an answer or ERROR not read by then is dropped */
#define SRV_SILENCE_MS 30000    /* the pusher pings every 5 s */
#define SRV_TICK_MS 1000
#define SRV_NOTE_MS 10000       /* unauthenticated events are logged at most this often */
#define SRV_INV_GAP_MS 1000     /* a peer's inventories: one a second, however it reconnects or asks, */
#define SRV_INV_BURST 4         /* after a burst (its daemon, a --full-sync and a reconnect at once) */

enum server_conn_state { C_NEW, C_SERVE, C_PEER, C_CLOSING };
enum server_pool { P_NONE, P_NEW, P_RELAY, P_CLI, P_PEER, P_N_ };

struct server_conn {
        struct server *srv;
        int fd;                         /* read from: the socket, or after a hand-off the relay's stdin */
        int wfd;                        /* written to: fd, or after a hand-off the relay's stdout */
        int relay_fd;                   /* after a hand-off: the relay's socket, watched for its end; else -1 */
        struct loop_fd *reg, *wreg, *relay_reg;   /* fd's; wfd's and relay_fd's after a hand-off */
        int fds[FDPASS_MAX];            /* received before the handshake, not yet taken by a HANDOFF */
        size_t n_fds;
        bool handed;                    /* fd and wfd are the relay's stdin and stdout (docs/DESIGN.md "Connections") */
        bool handoff_now;               /* server_msg accepted a HANDOFF: conn_pump switches after its frame */
        enum server_conn_state state;
        enum server_pool pool;          /* the slot it holds; kept while C_CLOSING */
        struct proto_wr in, out;
        size_t in_off;                  /* bytes of in already dispatched */
        size_t out_off;                 /* bytes of out already written */
        size_t ok_len;                  /* bytes of out, after out_off, that may be written */
        uint64_t written;               /* bytes written in all */
        uint64_t inv_end;               /* written reaches this once the last inventory is out */
        bool inv_again;                 /* an INV_REQ came while an inventory was still unwritten */
        bool more;                      /* yielded with frames left: the resume timer comes back */
        char from[PROTO_NODE_MAX + 1];  /* --serve --from, "" = any peer */
        size_t idx;                     /* peer index once HELLO is accepted */
        uint64_t since_ms;              /* accepted, or (C_CLOSING) its last answer made */
        uint64_t last_io_ms;
        bool pumping;                   /* in holds the frame being dispatched */
        bool dead;
        struct server_conn *next;
};

/* A kind of log line a client can cause: one per SRV_NOTE_MS, then a
 * count. */
struct server_rate {
        uint64_t ms;                    /* the last line was logged then */
        uint64_t quiet;                 /* lines held back since */
};

/* What a peer's reconnections and requests cost, whichever connection
 * carries them. */
struct server_peer {
        uint64_t inv_tat_ms;            /* inventory rate (GCRA): when the bucket is empty again */
        struct server_rate lines;       /* its connects and replacements */
        struct server_rate refusals;    /* what it sent that closed its connection */
};

struct server {
        struct node *node;
        struct server_peer *peer;       /* one per configured peer */
        struct server_peer *peer_next;  /* a reload's, made by server_reserve_peers */
        bool no_status;                 /* the --serve stand-in: it has no peers to report */
        gid_t gid;                      /* the socket's group: its members may connect */
        bool from_systemd;              /* the socket was passed (sock_open): its file is not ours */
        uint64_t refused_ms;            /* refusals are logged at most once a minute, */
        uint64_t refused_quiet;         /* with how many went unlogged since */
        struct server_rate sock_lines;  /* what unclassified clients and the pools cause */
        struct server_rate relay_lines; /* refused HELLOs, relays without one */
        const struct conf *conf;
        struct peer *const *peers;      /* the daemon's, for --status */
        struct loop *loop;
        int fd;
        struct loop_fd *reg;
        struct server_conn *conns;      /* newest first */
        size_t n_pool[P_N_];            /* live connections in each pool */
        struct loop_timer *tick, *resume;
};

static inline size_t server_unwritten(const struct server_conn *c) {
        return c->out.len - c->out_off;
}

/* The unwritten replies the high-water mark is about: those after the
 * inventory in flight, which has its own bound (one at a time). A big
 * inventory does not stop a peer's ACKs, as it did not before. */
static inline size_t server_backlog(const struct server_conn *c) {
        size_t inv_left = c->inv_end > c->written ? (size_t)(c->inv_end - c->written) : 0;

        return server_unwritten(c) - inv_left;
}

/* server_conn.c */
/* True if a line of this kind may be logged now; *ret_quiet is how many
 * were held back since the last one. */
bool server_rate_ok(struct server_rate *lim, uint64_t *ret_quiet);
/* A warning through lim, with the count held back. */
__attribute__((format(printf, 2, 3))) void server_note(struct server_rate *lim, const char *fmt, ...);
/* Close the fds received and not taken (by a HANDOFF). */
void server_conn_drop_fds(struct server_conn *c);
/* Close now: unregister, close the fds, free the buffers (in stays while it
 * is being dispatched; conn_pump frees it). The struct stays, marked dead,
 * until reaped. Idempotent. */
void server_conn_close(struct server_conn *c);
/* The peer's name, its --from, or "?", for the log. */
const char *server_who(const struct server_conn *c);
/* Move c into pool p of at most max live connections, closing the oldest
 * other one there if it is full. */
void server_admit(struct server_conn *c, enum server_pool p, size_t max);
/* Queue an ERROR frame saying why and close once it is written; logged.
 * Returns -ECONNABORTED. */
int server_refuse(struct server_conn *c, const char *why);

/* server_msg.c */
/* What frame m means on c in its state; replies go to c->out. Returns 0, or
 * a negative errno when c is done (closing or closed). m's data points into
 * c->in and is not kept. */
int server_msg(struct server_conn *c, const struct proto_msg *m);
/* This node's inventory to c now, or once allowed (see server_msg.c). */
void server_send_inventory(struct server_conn *c);

#endif
