/* Internal to daemon.c and fullsync.c: the objects one run of the program
 * owns, all on one loop. */
#ifndef SESSYNC_DAEMON_DAEMON_INT_H
#define SESSYNC_DAEMON_DAEMON_INT_H

#include <stdbool.h>

struct conf;
struct loop;
struct loop_fd;
struct loop_timer;
struct node;
struct server;
struct state;
struct watch;

struct dmn {
        const struct conf *conf;
        int dirfd;
        struct loop *loop;
        struct node *node;
        struct state *state;
        bool state_readonly;            /* --full-sync beside a running daemon */
        struct watch *watch;            /* daemon only */
        struct server *server;          /* daemon only */
        int sigfd;
        struct loop_fd *sigreg;
        struct loop_timer *housekeeping;
        struct loop_timer *metrics;     /* daemon with metrics_file only */
        bool metrics_failed;            /* log the first failure, not every one */
        const bool *only;               /* --full-sync: the peers to push to, NULL = all */
        void (*on_turn)(struct dmn *d); /* --full-sync: progress and completion */
        void *ctx;
};

enum dmn_state_mode {
        DMN_STATE_WRITE,        /* the daemon: lock the state, or fail */
        DMN_STATE_TRY,          /* --full-sync: lock it if no daemon does, else read tombstones only */
};

/* Open the session dir, state, node and peers (not started). Logs its own
 * errors. */
int dmn_open(struct dmn *d, const struct conf *c, enum dmn_state_mode mode);
/* Before the first scan: files the journal lists are taken as deleted if
 * missing, unless this is the first start since boot or the directory was
 * wiped (then they are forgotten). */
void dmn_judge_journal(struct dmn *d);
void dmn_close(struct dmn *d);
int dmn_signals(struct dmn *d);
void dmn_before_sleep(struct loop *l, void *ctx);

#endif
