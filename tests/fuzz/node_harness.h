/* Internal to fuzz_node.c (the world, the daemon, the connection) and
 * node_checks.c (what must hold after each input): the harness's state,
 * one object for the whole run. See fuzz_node.c. */
#ifndef SESSYNC_TESTS_FUZZ_NODE_HARNESS_H
#define SESSYNC_TESTS_FUZZ_NODE_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uthash.h>

#include "daemon/daemon_int.h"
#include "lib/conf.h"
#include "proto/buf.h"
#include "proto/msg.h"

struct loop_fd;
struct loop_timer;
struct node;
struct peer;

#define F_CHUNK 0x07u
#define F_RAW 0x08u
#define F_SHUT 0x10u
#define F_PEER_C 0x20u
#define F_OTHER 0x40u
#define F_OUT 0x80u
#define FZ_MAX_STEPS 400
#define FZ_LOG_MAX (4u << 20)

/* One change the stream sent, in order. */
struct fz_sent {
        uint32_t seq;
        char name[PROTO_NAME_MAX + 1];
};

/* A record of the journal read back. */
struct fz_rec {
        UT_hash_handle hh;
        uint8_t kind;
        struct proto_ver ver;
        char name[];
};

struct fz_harness {
        char root[PATH_MAX], sess[PATH_MAX], state[PATH_MAX], run[PATH_MAX], sock[PATH_MAX];
        char outside[PATH_MAX], target[PATH_MAX], journal[PATH_MAX];
        struct conf *conf;
        uint8_t *journal_bytes;         /* the fixture's journal, as lib/state.c wrote it */
        size_t journal_len;
        FILE *err;                      /* the real stderr */
        FILE *log;                      /* the daemon's stderr during an input */
        char *logbuf;
        struct daemon d;
        struct loop_timer *spin;
        bool turn_next;
        int client;
        int locked;                     /* the FZ_LOCKED file, held LOCK_EX */
        int other;                      /* F_OTHER: the same peer's older connection */
        bool other_eof;
        int out_fd;                     /* F_OUT: the peer's end of the outbound channel (node_peer_ssh.c) */
        int ino;                        /* inotify on the session dir */
        struct loop_fd *ino_reg;
        bool eof;
        bool verbose;
        struct proto_wr rx;
        size_t rx_seen;
        bool marked;
        /* what the stream holds (decoded by the harness, as the server would) */
        struct fz_sent *sent;
        size_t n_sent, cap_sent;
        size_t n_inv;                   /* INV entries in the stream */
        bool mark_ambiguous;            /* the stream has its own PING with FZ_MARK_CLOCK */
        char nodes[8][PROTO_NODE_MAX + 1]; /* node names from RELAY/HELLO, quoted by refusals */
        size_t n_nodes;
};

extern struct fz_harness fz;

#define CHECK(c)                                                                                         \
        do {                                                                                             \
                if (!(c))                                                                                \
                        fz_fail(__LINE__, #c);                                                              \
        } while (0)

/* abort() with what failed and the tail of the daemon's log. */
__attribute__((noreturn)) void fz_fail(int line, const char *what);
bool fz_same_bytes(const char *path, const char *content);

/* node_checks.c: each aborts (fz_fail) on a break. */
void fz_check_replies(struct node *n);
void fz_check_status_replies(void);
void fz_check_session_dir(struct node *n);
void fz_check_table_and_journal(struct node *n);
void fz_check_outside(void);
void fz_check_no_ids(const char *text, size_t len);
/* F_OUT: what the node sent its peer, that sending changed nothing on
 * disk, and what --status would show. */
void fz_check_outbound(struct node *n, struct peer *const *peers);
/* FUZZ_NODE_VERBOSE: the log, the replies, the table's counts. */
void fz_show(long loglen);

#endif
