/* Internal to daemon.c and fullsync.c: the objects one run of the program
 * owns, all on one loop. The daemon owns the peers (the node keeps only
 * what each peer still needs, by the peer's index in conf order). */
#ifndef SESSYNC_DAEMON_DAEMON_INT_H
#define SESSYNC_DAEMON_DAEMON_INT_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct loop;
struct loop_fd;
struct loop_timer;
struct health;
struct node;
struct peer;
struct server;
struct state;
struct watch;

struct daemon {
        const struct conf *conf;        /* the running config: the caller's, or conf_owned */
        struct conf *conf_owned;        /* the last reload's (daemon/reload.c), NULL before */
        int dirfd;
        struct loop *loop;
        struct node *node;
        struct peer **peers;            /* conf->n_peers, conf order */
        struct state *state;
        bool state_readonly;            /* --full-sync beside a running daemon */
        struct watch *watch;            /* daemon only */
        struct server *server;          /* daemon only */
        struct health *health;          /* daemon with health_listen only */
        int sigfd;
        struct loop_fd *sigreg;
        struct loop_timer *housekeeping;
        struct loop_timer *metrics;     /* daemon with metrics_file only */
        bool metrics_failed;            /* log the first failure, not every one */
        bool first_turn_done;
        const bool *only;               /* --full-sync: the peers to push to, NULL = all */
        void (*on_turn)(struct daemon *d); /* --full-sync: progress and completion */
        void *ctx;
};

enum daemon_state_mode {
        DAEMON_STATE_WRITE,     /* the daemon: lock the state, or fail */
        DAEMON_STATE_TRY,       /* --full-sync: lock it if no daemon does, else read tombstones only */
};

/* Open the session dir, state, node and peers (not started). Logs its own
 * errors. */
int daemon_open(struct daemon *d, const struct conf *c, enum daemon_state_mode mode);
/* Before the first scan: files the journal lists are taken as deleted if
 * missing, unless this is the first start since boot or the directory was
 * wiped (then they are forgotten). */
void daemon_judge_journal(struct daemon *d);
void daemon_close(struct daemon *d);
int daemon_signals(struct daemon *d);
/* The loop's before-sleep hook: one turn (docs/ARCHITECTURE.md "The turn"). */
void daemon_turn(struct loop *l, void *ctx);

#endif
