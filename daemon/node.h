/* The node: what this daemon knows of every session name, and what each
 * peer still needs (DESIGN.md "Versions", "Catch-up").
 *
 * One entry per name, live file or tombstone, in a uthash table. Per peer,
 * an entry carries what the peer is believed to hold and a dirty bit; the
 * per-peer dirty queue holds each entry at most once, so a burst of writes
 * to one session is one transfer and a peer that is down costs memory
 * bounded by the number of sessions, never a queue of messages.
 *
 * Change detection: an inotify event puts the name in the check set; once
 * per loop turn (before sleeping) each checked name is read under LOCK_SH
 * and compared with the entry. Only a version that differs from the one
 * recorded is news. The receiver records every version it applies before
 * its own inotify events come back, so applies never echo.
 */
#ifndef SESSYNC_DAEMON_NODE_H
#define SESSYNC_DAEMON_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uthash.h>

#include "lib/conf.h"
#include "proto/msg.h"

struct loop;
struct loop_timer;
struct delta_sig;
struct peer;
struct state;

#define ENT_NONE 0xff   /* kind of an entry that is neither a file nor a tombstone */

struct ent_peer {
        struct proto_ver has;   /* what the peer holds (or will, once in-flight frames land) */
        uint8_t has_kind;       /* PROTO_KIND_* of that, ENT_NONE if unknown */
        bool dirty;             /* the peer needs this entry */
        bool queued;            /* in the peer's dirty vector (dirty, or cleared and not yet skipped) */
        bool full;              /* next send is the whole file (after a NEED_FULL) */
        bool delayed;           /* in the peer's delay list */
        bool missing;           /* catch-up: not (yet) seen in the peer's inventory */
        uint8_t busy_tries;     /* consecutive BUSY answers: the retry backs off */
};

struct ent {
        UT_hash_handle hh;
        char *name;
        struct proto_ver ver;   /* file: its version; tombstone: see proto_kind */
        uint64_t tomb_ns;       /* tombstone: when it was made here (for tombstone_ttl) */
        uint32_t size;
        uint8_t kind;           /* PROTO_KIND_* or ENT_NONE */
        bool from_peer;         /* recorded version came from an apply: not pushed live */
        bool checking;          /* in the check set */
        bool suspect;           /* the journal says an apply was cut short here */
        struct delta_sig *sig;  /* signature of the basis for deltas, or NULL */
        uint64_t sig_hash;      /* content hash of that basis */
        uint8_t *tdata;         /* this turn's read of the file (shared by all peers) */
        size_t tlen;
        uint64_t tturn;
        struct ent_peer peer[]; /* one per configured peer, in conf order */
};

struct ent_vec {
        struct ent **v;
        size_t n, cap, head;
};

struct node_delay {
        struct ent *e;
        uint64_t due_ms;
};

struct node_stats {
        uint64_t sent, applied, bytes_sent, bytes_full, conflicts, errors;
        uint64_t rejected;      /* changes the peer refused for good */
};

struct node {
        const struct conf *conf;
        struct loop *loop;
        int dirfd;
        struct ent *table;
        size_t n_files, n_tombs;
        uint64_t turn;

        struct ent_vec checks;          /* names to look at this turn */
        struct ent_vec busy;            /* locked by PHP: look again shortly */
        struct loop_timer *busy_timer;
        bool rescan;                    /* inotify overflowed: scan the directory */

        struct peer **peers;            /* n_peers, conf order */
        size_t n_peers;
        struct ent_vec *dirty;          /* per peer; may hold cleared entries, skipped */
        size_t *n_dirty;                /* per peer: entries whose dirty bit is set */
        struct node_delay **delay;      /* per peer, unsorted */
        size_t *n_delay, *cap_delay;
        struct loop_timer *delay_timer;
        struct node_stats *stats;       /* per peer */
        struct ent_vec turn_reads;      /* entries whose tdata is set */
        size_t turn_bytes;              /* bytes held in tdata this turn */

        struct state *state;            /* the state journal, NULL in tests */
        uid_t file_uid;                 /* owner for files we create, (uid_t)-1 = ours */
        gid_t file_gid;
};

int node_new(const struct conf *c, struct loop *l, int dirfd, struct node **ret);
void node_free(struct node *n);

struct ent *node_get(struct node *n, const char *name);
/* Find or create (kind ENT_NONE). NULL only when out of memory. */
struct ent *node_ensure(struct node *n, const char *name);

/* An inotify event or a rescan found name: look at it this turn. */
void node_check(struct node *n, const char *name);
/* Scan the whole directory (start-up, IN_Q_OVERFLOW). */
int node_scan(struct node *n);
/* Run pending checks now (called once per turn). */
void node_run_checks(struct node *n);

/* Dirty-set operations. idx is the peer's index in conf order. */
void node_mark_dirty(struct node *n, struct ent *e, size_t idx);
void node_mark_all(struct node *n, struct ent *e);
void node_delay(struct node *n, struct ent *e, size_t idx, uint64_t ms);
/* Take e out of peer idx's dirty set (catch-up found the peer has it). */
void node_clear_dirty(struct node *n, struct ent *e, size_t idx);
/* Next dirty entry for peer idx, or NULL. The dirty bit is cleared. */
struct ent *node_next_dirty(struct node *n, size_t idx);
size_t node_pending(const struct node *n, size_t idx);

/* This turn's bytes of a live file, read once and shared by all peers.
 * Returns 0, -ENOENT (gone: the entry has become a tombstone or none),
 * -EWOULDBLOCK (locked: retry), or another error. The entry's version is
 * brought up to date with what was read. *ret_data lives until the turn ends. */
int node_read(struct node *n, struct ent *e, const uint8_t **ret_data, size_t *ret_len);
/* End of turn: drop read caches, move delta bases forward. */
void node_end_turn(struct node *n);

/* The disk holds f (NULL: no file). Where the table differs, that is a
 * change made here that no check has looked at yet (PHP wrote or unlinked
 * it): record it and queue it for every peer, exactly as a check would. The
 * receiver calls this before it decides anything, so an incoming version
 * never hides a local write or logout. */
struct sess_file;
void node_saw(struct node *n, struct ent *e, const struct sess_file *f);

/* Record a version this node now holds on disk because it applied it. */
void node_record_file(struct node *n, struct ent *e, const struct proto_ver *v, size_t size, bool from_peer);
/* Record a tombstone (persisted when a store is attached). */
int node_record_tomb(struct node *n, struct ent *e, uint8_t kind, const struct proto_ver *v, bool from_peer);

/* Is v older than tombstone_ttl? Such a version is never sent nor applied:
 * a logout of it may already be forgotten (tombstones live that long), and
 * PHP's GC takes it for garbage (tombstone_ttl > session_lifetime). */
bool node_ver_forgettable(const struct node *n, const struct proto_ver *v);

/* Does the tombstone (kind, t) beat the file version v? */
bool node_tomb_beats(uint8_t kind, const struct proto_ver *t, const struct proto_ver *v);
/* Does the state (kind_a, a) beat (kind_b, b)? ENT_NONE never beats; any
 * state beats ENT_NONE. Used by catch-up to decide who sends. */
bool node_state_beats(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b);

/* Drop tombstones older than tombstone_ttl that no peer still needs. */
void node_expire_tombs(struct node *n);

/* Load one record of the state journal (state_load_cb). */
void node_load_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns);
/* Forget the live files the journal listed (they cannot be trusted to mean
 * "deleted while down" after a reboot or a wiped directory). */
void node_forget_files(struct node *n);
/* Journal that e is about to be overwritten with a peer's version v; and,
 * after a failed apply, journal e's state again. */
void node_journal_applying(struct node *n, struct ent *e, const struct proto_ver *v);
void node_journal_restore(struct node *n, struct ent *e);
/* At start: files an apply was writing when the daemon died get the oldest
 * possible mtime, so every peer's copy beats them and is sent again. */
void node_reset_suspects(struct node *n);
/* Rewrite the state journal from the table when it has grown too long. */
int node_compact_state(struct node *n);

#endif
