/* Internal to the node's files (node.c, node_turn.c, node_queue.c,
 * node_check.c, node_sync.c, node_send.c, node_recv.c, node_unseen.c) and to unit tests:
 * the node object itself. No other file includes this header; the rest of
 * the daemon goes through daemon/node.h.
 *
 * Layering inside the node, lowest first (no file calls one above it):
 *   node_queue.c  per-peer dirty sets and delays
 *   node_file.c   opening a file as PHP's own (owner, links)
 *   node_turn.c   this turn's bytes of each file (the turn cache)
 *   node_ready.c  readiness: what each peer holds that beats ours
 *   node.c        the table: entries, recording versions and tombstones
 *   node_unseen.c names never seen: their bounded tombstones, budgets, reserve
 *   node_check.c  change detection: reconcile entries with the disk
 *   node_sync.c   catch-up and inventories
 *   node_send.c   the frame for one entry and one peer; its ACK
 *   node_recv.c   applying a peer's frame
 *   node_peers.c  a reload's new peer list: every per-peer slot re-indexed
 * Timers are created by the file whose callback they run. */
#ifndef SESSYNC_DAEMON_NODE_INT_H
#define SESSYNC_DAEMON_NODE_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <uthash.h>

#include "daemon/node.h"
#include "lib/sess.h"
#include "lib/ver.h"

struct delta_sig;
struct loop;
struct loop_timer;
struct state;

/* One entry's state for one peer. */
struct node_ent_peer {
        struct proto_ver has;   /* what the peer holds (or will, once in-flight frames land) */
        uint8_t has_kind;       /* VER_KIND_* of that, VER_KIND_NONE if unknown */
        bool dirty;             /* the peer needs this entry */
        bool queued;            /* in the peer's dirty vector (dirty, or cleared and not yet skipped) */
        bool full;              /* next send is the whole file (after a NEED_FULL) */
        bool delayed;           /* in the peer's delay list */
        bool missing;           /* catch-up: not (yet) seen in the peer's inventory */
        bool wanted;            /* readiness: the peer holds a state that beats ours (node_ready.c) */
        uint8_t busy_tries;     /* consecutive BUSY answers: the retry backs off */
        uint8_t lock_tries;     /* node_send.c: reads in a row that found PHP's lock held */
        bool via_older;         /* node_send.c: the last DELTA queued was against e->older */
};

/* node_turn.c: an older delta basis, kept beside the newest while a peer
 * that lags still holds it (docs/DESIGN.md "The basis"). */
struct node_older {
        struct node_ent *e;
        struct delta_sig *sig;
        uint64_t hash;                  /* content hash of that basis */
        uint64_t since_ms;              /* when it stopped being the newest */
        struct node_older *prev, *next; /* n->older_head..older_tail, oldest first */
};

struct node_ent {
        UT_hash_handle hh;
        char *name;
        struct proto_ver ver;   /* file: its version; tombstone: see lib/ver.h */
        uint64_t tomb_ns;       /* tombstone: when it was made here (for tombstone_ttl) */
        uint32_t size;
        uint8_t kind;           /* VER_KIND_* */
        bool from_peer;         /* recorded version came from an apply: not pushed live */
        bool checking;          /* in the check set */
        bool retrying;          /* in the busy set (node_check.c): looked at again at due_ms */
        uint8_t tries;          /* node_check.c: looks in a row that found it locked or unreadable */
        uint64_t due_ms;
        uint64_t read_fp;       /* node_check.c: unreadable, warned about in this state (fingerprint); 0 if not */
        size_t unseen_at;       /* a tombstone for a name never had here: its place in the heap + 1; 0 if not */
        bool peer_made;         /* file created here by a peer's FILE, not written by PHP since: its
                                 * peer's DELETE is a name never seen's (node_recv.c) */
        bool suspect;           /* the journal says an apply was cut short here */
        uint8_t skip;           /* NODE_SKIP_*: why the file on disk is not replicated */
        bool start_busy;        /* locked at the first turn's check: still counts as found at start */
        bool tdelta_older;      /* node_turn.c: see tdata (here, in what was padding) */
        char tag[SESS_TAG_LEN]; /* what logs call it (sess_tag): never the id */
        struct delta_sig *sig;  /* signature of the newest basis for deltas, or NULL */
        uint64_t sig_hash;      /* content hash of that basis */
        struct node_older *older; /* node_turn.c: the basis before it, while a peer holds it; or NULL */
        /* node_turn.c: this turn's read of the file (shared by all peers):
         * tlen bytes, then tdlen bytes of delta against the newest basis
         * (tdelta_older, above: against older) made this turn, shared too. */
        uint8_t *tdata;
        uint32_t tlen, tdlen;
        uint64_t tturn;
        /* One per configured peer, in conf order: allocated right after
         * the entry, until a reload with other peers gives it its own
         * array (node_peers.c). */
        struct node_ent_peer *peer;
};

/* A FIFO of entries: push at the end, pop from head. */
struct node_vec {
        struct node_ent **v;
        size_t n, cap, head;
};

struct node_delay {
        struct node_ent *e;
        uint64_t due_ms;
};

/* Kinds of line a peer's frames make the receiver log (node_recv.c): each
 * at most once per peer every 10 s, then a count. */
enum { NODE_NOTE_STALE, NODE_NOTE_AHEAD, NODE_NOTE_SIZE, NODE_NOTE_NOTREG, NODE_NOTE_HASH, NODE_NOTE_NAME,
       NODE_NOTE_N };

struct node_note {
        uint64_t ms;                    /* the last line was logged then */
        uint64_t quiet;                 /* lines held back since */
};

/* Everything the node keeps for one peer. */
struct node_peer {
        struct node_vec dirty;          /* may hold cleared entries, skipped when popped */
        size_t n_dirty;                 /* entries whose dirty bit is set */
        struct node_delay *delay;       /* unsorted */
        size_t n_delay, cap_delay;
        size_t catchup_found;           /* entries the running catch-up marked */
        struct node_stats stats;
        /* Readiness (node_ready.c): what this peer holds that beats ours,
         * from its inventory, until it has all arrived. */
        uint8_t catchup;                /* NODE_CU_* */
        size_t n_wanted, n_wanted_total;
        uint64_t progress_ms;           /* last compare or arrival: a stall excludes the peer */
        /* node_unseen.c: this peer's budget of tombstones for names never seen */
        uint32_t new_tokens;
        uint64_t new_ms;
        bool new_warned;
        struct node_note note[NODE_NOTE_N];     /* node_recv.c */
        uint64_t live_ms;               /* node_send.c: last asked for a frame or answered one (connected) */
};

enum { NODE_CU_WAITING, NODE_CU_RECEIVING, NODE_CU_DONE, NODE_CU_EXCLUDED };

struct node {
        const struct conf *conf;
        struct loop *loop;
        int dirfd;
        struct node_ent *table;
        size_t n_files, n_tombs;
        uint64_t turn;

        struct node_vec checks;         /* node_check.c: names to look at this turn */
        struct node_vec busy;           /* node_check.c: locked or unreadable, look again at each one's due_ms */
        struct loop_timer *busy_timer;  /* node_check.c */
        bool rescan;                    /* inotify overflowed: scan the directory */

        struct node_peer *peer;         /* n_peers, conf order */
        size_t n_peers;
        struct loop_timer *delay_timer; /* node_queue.c */

        struct node_vec turn_reads;     /* node_turn.c: entries whose tdata is set */
        size_t turn_bytes;              /* node_turn.c: bytes held in tdata this turn */
        struct node_older *older_head, *older_tail; /* node_turn.c: older bases, oldest first */
        size_t older_bytes;             /* node_turn.c: what they hold (capped) */

        struct state *state;            /* the state journal, NULL in tests */
        bool durable;                   /* this turn's tombstones are on disk */
        uid_t php_uid;                  /* PHP's user: only its files travel, replicas are its */
        gid_t php_gid;
        bool give_away;                 /* we are not PHP's user (root): chown what we create */
        size_t n_skipped;               /* entries whose file is not PHP's own (skip set) */
        uint64_t start_ms;              /* node_new: readiness timeouts count from here */
        bool ready;                     /* latched: caught up with every reachable peer */
        size_t changed_at_start;        /* local changes the first turn's checks found (PHP ran meanwhile) */
        uint64_t skipped_total;         /* times a file was found not PHP's own */
        size_t n_unreadable;            /* node_check.c: names whose file cannot be read now */
        uint64_t unreadable_total;      /* node_check.c: warnings about those (one per name and change) */
        uint64_t lock_retries_total;    /* node_check.c: looks that found PHP's lock held */
        /* node_unseen.c (docs/DESIGN.md "Names never seen") */
        struct node_ent **unseen;       /* min-heap by cover of tombstones for names never had here */
        size_t n_unseen, cap_unseen, unseen_max;
        struct proto_ver unseen_mark;   /* forgotten ones covered up to here */
        bool unseen_marked;
        uint64_t unseen_forgotten_total;
        uint32_t new_rate, new_burst;   /* tombstones for names never seen, per peer: a second, at once */
        bool space_warned;
};

/* Why a file on disk is not replicated (docs/DESIGN.md "Only PHP's own
 * files"). */
enum { NODE_SKIP_NONE, NODE_SKIP_OWNER, NODE_SKIP_LINKS };

/* node.c */
struct node_ent *node_get(struct node *n, const char *name);
/* Find or create (kind VER_KIND_NONE). NULL only when out of memory. */
struct node_ent *node_ensure(struct node *n, const char *name);
/* Change e's kind, keeping the file and tombstone counts right. */
void node_set_kind(struct node *n, struct node_ent *e, uint8_t kind);
/* Record a version this node now holds on disk (read or applied). */
void node_record_file(struct node *n, struct node_ent *e, const struct proto_ver *v, size_t size, bool from_peer);
/* Record a tombstone; persisted (not yet synced) when a journal is attached.
 * kind may carry STATE_UNSEEN (lib/state.h): journaled so, kept without it. */
int node_record_tomb(struct node *n, struct node_ent *e, uint8_t kind, const struct proto_ver *v, bool from_peer);
/* Journal that e is about to be overwritten with a peer's version v; and,
 * after a failed apply, journal e's state again. */
void node_journal_applying(struct node *n, struct node_ent *e, const struct proto_ver *v);
void node_journal_restore(struct node *n, struct node_ent *e);
bool node_forgettable(const struct node *n, const struct proto_ver *v);
/* Forget e: journaled as gone, kind NONE, freed unless something still
 * holds it (a peer's queue, a check; node_expire_tombs frees it then). */
void node_forget(struct node *n, struct node_ent *e);
/* node_unseen.c (docs/DESIGN.md "Names never seen") */
/* Is a version for a name this node holds nothing for at or below the
 * watermark (what forgotten tombstones covered)? Then it is refused. */
bool node_unseen_covered(const struct node *n, const struct proto_ver *v);
/* Does the watermark already cover everything tombstone (kind, v) beats? */
bool node_unseen_tomb_covered(const struct node *n, uint8_t kind, const struct proto_ver *v);
/* Take one from peer idx's budget of tombstones for names never seen;
 * false (counted, logged once) when it is spent. */
bool node_new_name_allowed(struct node *n, size_t idx);
/* Would the session filesystem keep its reserve free for PHP after bytes
 * more are written? false (counted for peer idx, logged once) when a new
 * or growing file must wait. */
bool node_space_reserved(struct node *n, size_t idx, uint64_t bytes);
/* e now holds a tombstone for a name never had here: into the heap; past
 * unseen_max the one covering least is forgotten and the watermark rises.
 * Returns 0 or -ENOMEM (e is then kept as a plain tombstone). */
int node_unseen_add(struct node *n, struct node_ent *e);
/* Raise the watermark to v (if above it), journaled. */
void node_unseen_raise(struct node *n, const struct proto_ver *v);
/* node.c: the heap itself. Insert e, fix e after its tombstone grew, the
 * one covering least (NULL if empty). node_set_kind takes an entry out when
 * it stops being a tombstone. */
int node_unseen_heap_add(struct node *n, struct node_ent *e);
void node_unseen_heap_fix(struct node *n, struct node_ent *e);
struct node_ent *node_unseen_heap_min(const struct node *n);
/* node_ready.c */
/* e's state changed, or peer idx sent a frame for e (from_peer): what e
 * still wants from its peers is looked at again. */
void node_ready_seen(struct node *n, struct node_ent *e, size_t from_peer);
/* Catch-up with peer idx compared inventories: e is (not) wanted from it. */
void node_ready_want(struct node *n, struct node_ent *e, size_t idx, bool want);
/* The first catch-up of peer idx is done (INV_END) / begins. */
void node_ready_compared(struct node *n, size_t idx);
void node_ready_begin(struct node *n, size_t idx);

/* node_file.c */
/* Open e's file refusing what is not PHP's own (sess_open_owned). A refusal
 * is recorded on e (logged once per name and reason, counted); a success
 * clears it. Same returns as sess_open_owned. */
int node_open(struct node *n, struct node_ent *e, int flags, size_t max, struct sess_file *f);
/* The tag of a name that has no entry (from the wire). */
#define NODE_TAG(name) sess_tag((name), (char[SESS_TAG_LEN]){ 0 })

/* node_turn.c */
/* Keep data (owned) as e's bytes for this turn, within the turn's byte cap;
 * over it, data is freed and nothing is kept. */
void node_turn_keep(struct node *n, struct node_ent *e, uint8_t *data, size_t len);
/* Forget e's bytes for this turn (they are not its version any more). */
void node_turn_drop(struct node *n, struct node_ent *e);
/* e's bytes at exactly its recorded version: from this turn's cache, or
 * read under LOCK_SH. Never changes the entry: -ESTALE when the disk holds
 * another version (or no file: -ENOENT), so the caller asks for a check.
 * -EWOULDBLOCK locked, -ENOBUFS over this turn's cap, -EFBIG too large,
 * -EPERM/-EMLINK not PHP's own (recorded on e by node_open).
 * *ret_data lives until the turn ends. */
int node_turn_read(struct node *n, struct node_ent *e, const uint8_t **ret_data, size_t *ret_len);
/* After node_turn_read succeeded this turn: a delta from the basis whose
 * content hash is basis (the newest, or the older one) to e's bytes, made
 * once per turn and basis and shared by every peer. *ret_data (the file's
 * bytes again: the cache may have moved) and *ret_delta live until the
 * turn ends or the next call for e. *ret_older: the basis was e->older.
 * -ENOENT when e keeps no basis with that hash, else delta_make's errors. */
int node_turn_delta(struct node *n, struct node_ent *e, uint64_t basis, const uint8_t **ret_data,
                    const uint8_t **ret_delta, size_t *ret_dlen, bool *ret_older);
/* Free e's bases, the newest and the older (a tombstone, or e is freed). */
void node_basis_free(struct node *n, struct node_ent *e);

/* node_queue.c */
void node_mark_dirty(struct node *n, struct node_ent *e, size_t idx);
void node_mark_all(struct node *n, struct node_ent *e);
void node_clear_dirty(struct node *n, struct node_ent *e, size_t idx);
/* Send e to peer idx again in ms, not before. */
void node_delay(struct node *n, struct node_ent *e, size_t idx, uint64_t ms);
/* Next dirty entry for peer idx, or NULL. The dirty bit is cleared. */
struct node_ent *node_next_dirty(struct node *n, size_t idx);

/* node_check.c */
/* The disk holds f (NULL: no file). Where the table differs, that is a
 * change made here that no check has looked at yet (PHP wrote or unlinked
 * it): record it and queue it for every peer, exactly as a check would. The
 * receiver calls this before it decides anything, so an incoming version
 * never hides a local write or logout. */
struct sess_file;
void node_saw(struct node *n, struct node_ent *e, const struct sess_file *f);

static inline int node_vec_push(struct node_vec *v, struct node_ent *e) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 64;
                struct node_ent **p;

                if (v->head > 0) {   /* reuse the consumed front before growing */
                        memmove(v->v, v->v + v->head, (v->n - v->head) * sizeof(*v->v));
                        v->n -= v->head;
                        v->head = 0;
                        if (v->n < v->cap)
                                goto room;
                }
                p = realloc(v->v, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                v->v = p;
                v->cap = cap;
        }
room:
        v->v[v->n++] = e;
        return 0;
}

static inline struct node_ent *node_vec_pop(struct node_vec *v) {
        struct node_ent *e;

        if (v->head == v->n) {
                v->head = v->n = 0;
                return NULL;
        }
        e = v->v[v->head++];
        if (v->head == v->n)
                v->head = v->n = 0;
        return e;
}

#endif
