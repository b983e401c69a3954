/* The node: what this daemon knows of every session name, and what each
 * peer still needs (docs/DESIGN.md "Versions, conflicts, deletes",
 * "Catch-up and full sync"). The object is opaque: the rest of the daemon
 * goes through these functions, and only the node's own files (listed in
 * node_int.h) see its table.
 *
 * One entry per name, live file or tombstone. Per peer, an entry carries
 * what the peer is believed to hold and a dirty bit; the per-peer dirty
 * queue holds each entry at most once, so a burst of writes to one session
 * is one transfer and a peer that is down costs memory bounded by the
 * number of sessions, never a queue of messages.
 *
 * One loop turn (docs/ARCHITECTURE.md "The turn"): node_run_checks reads
 * each name inotify reported under LOCK_SH and compares it with its entry;
 * node_make_durable syncs the tombstones recorded so far; node_send_next
 * fills each peer's output; the socket server writes the replies; then
 * node_end_turn. Sending only reads: a file found changed at send time is
 * handed back to the next turn's check, never re-detected in the middle of
 * one peer's flush. Who wins between versions and tombstones is lib/ver.h.
 */
#ifndef SESSYNC_DAEMON_NODE_H
#define SESSYNC_DAEMON_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/conf.h"
#include "proto/msg.h"

struct loop;
struct node;
struct proto_wr;
struct state;

/* Counters per peer, both directions (--status, metrics). */
struct node_stats {
        uint64_t sent;          /* frames sent to the peer */
        uint64_t applied;       /* of those, acknowledged as applied */
        uint64_t bytes_sent, bytes_full;
        uint64_t conflicts;     /* versions refused because the other side held a newer one */
        uint64_t errors;        /* connection failures, changes that could not be applied */
        uint64_t rejected;      /* changes the peer refused for good */
        uint64_t refused_new;   /* frames for names never seen answered RETRY: delete budget or space reserve */
};

enum node_stat { NODE_STAT_SENT, NODE_STAT_ERRORS };

int node_new(const struct conf *c, struct loop *l, int dirfd, struct node **ret);
void node_free(struct node *n);
/* Attach the state journal (not owned): records and tombstones go there. */
void node_set_state(struct node *n, struct state *s);
/* PHP's user (docs/DESIGN.md "Only PHP's own files"): only files it owns,
 * with one link, are sent or written into; files this node creates are
 * given to uid:gid when the daemon runs as another user (root). Default:
 * the daemon's own user. */
void node_set_php_user(struct node *n, uid_t uid, gid_t gid);

/* Reload (node_peers.c, docs/DESIGN.md "Reload"): c (not owned; it must
 * outlive the node or the next call) replaces the config. node_set_conf
 * when the peers are the same, in the same order; node_set_peers when they
 * changed: old_of_new[j] is the old index of c's peer j, or NODE_NO_PEER
 * for a new one; old peers not listed are dropped. Returns 0, or -ENOMEM
 * with the node unchanged. */
#define NODE_NO_PEER ((size_t)-1)
void node_set_conf(struct node *n, const struct conf *c);
int node_set_peers(struct node *n, const struct conf *c, const size_t *old_of_new);
const struct conf *node_conf(const struct node *n);
size_t node_n_files(const struct node *n);
size_t node_n_tombs(const struct node *n);
/* Names whose file is not PHP's own (another owner, or hard links): not
 * replicated. Now, and how often one was found since start. */
size_t node_n_skipped(const struct node *n);
uint64_t node_skipped_total(const struct node *n);
/* Change detection's backoff (docs/DESIGN.md "Change detection"): names
 * whose file cannot be read now, warnings about them since start (one per
 * name and change), looks that found PHP's lock held. */
size_t node_n_unreadable(const struct node *n);
uint64_t node_unreadable_total(const struct node *n);
uint64_t node_lock_retries_total(const struct node *n);
/* Tombstones kept for names never had here, and how many of those were
 * forgotten early under the watermark (docs/DESIGN.md "Names never seen"). */
size_t node_n_unseen(const struct node *n);
uint64_t node_unseen_forgotten_total(const struct node *n);
const struct node_stats *node_stats(const struct node *n, size_t idx);
void node_count(struct node *n, size_t idx, enum node_stat which);
/* Changes peer idx still needs (dirty or delayed), in-flight frames excluded. */
size_t node_pending(const struct node *n, size_t idx);

/* Change detection (node_check.c). An inotify event or a rescan found
 * name: look at it this turn. Names that are not sessions are ignored. */
void node_check(struct node *n, const char *name);
/* inotify overflowed: scan the whole directory at the next turn. */
void node_rescan_later(struct node *n);
/* Scan the whole directory now (start-up). */
int node_scan(struct node *n);
/* The turn's first step: run pending checks. */
void node_run_checks(struct node *n);
/* The turn's second step: tombstones recorded so far reach the disk, before
 * any DELETE or ACK of this turn leaves. Returns 0 or the sync's error: the
 * node then holds its DELETEs back (retried in a second) and the caller
 * holds its replies until a later turn's sync succeeds. */
int node_make_durable(struct node *n);
/* The turn's last step: drop read caches, move delta bases forward. */
void node_end_turn(struct node *n);

/* Sending to peer idx (node_send.c). Append the frame for its next dirty
 * entry to wr with sequence seq. Returns 1 if a frame was appended, 0 when
 * nothing is left to send now, <0 on a transient error (the entry is kept
 * and retried in a second). Counts bytes; logs. */
int node_send_next(struct node *n, size_t idx, struct proto_wr *wr, uint32_t seq);

/* What an ACK meant, for the peer's own state and log. */
enum node_ack_result {
        NODE_ACK_DONE,          /* applied, or nothing more to do */
        NODE_ACK_STALE,         /* the peer holds a newer version or delete */
        NODE_ACK_RETRY,         /* it could not apply now (disk full?): retried */
        NODE_ACK_REFUSED,       /* refused for good */
        NODE_ACK_UNKNOWN,       /* no such entry here (any more) */
};
/* Peer idx answered a frame for m->name. */
enum node_ack_result node_ack(struct node *n, size_t idx, const struct proto_msg *m);

/* Readiness (node_ready.c, docs/DESIGN.md "Readiness"): has this node
 * received what every reachable peer held that beats its own? Latched once
 * true; also decides (and logs) which peers stalled past ready_timeout. */
bool node_ready(struct node *n);
/* Has peer idx sent everything it held newer (its catch-up is done)? */
bool node_ready_peer_done(const struct node *n, size_t idx);
/* Why peer idx does (not) hold readiness, as text: "done", "receiving: N
 * of M to go", ... Returns buf. */
const char *node_ready_why(const struct node *n, size_t idx, char *buf, size_t size);
/* Local changes the first turn found: PHP wrote or logged out here while no
 * daemon ran. Such a node's own users have their newest data here. */
size_t node_changed_at_start(const struct node *n);

/* Catch-up with peer idx (node_sync.c): begin, one call per entry of its
 * inventory, finish. Whatever this node holds that beats what the peer has
 * (or that it lacks) becomes dirty for it. finish returns how many entries
 * this catch-up marked. */
void node_catchup_begin(struct node *n, size_t idx);
void node_catchup_entry(struct node *n, size_t idx, const struct proto_inv_ent *ie);
size_t node_catchup_finish(struct node *n, size_t idx);
/* Append this node's inventory (INV frames, then INV_END) to wr. */
void node_inv_encode(const struct node *n, struct proto_wr *wr);

/* Receiving (node_recv.c): m is a decoded FILE/DELTA/TOUCH/DELETE from
 * peer idx. *ack is filled (type ACK). Never fails: every outcome is a
 * status. */
void node_recv(struct node *n, size_t idx, const struct proto_msg *m, struct proto_msg *ack);

/* Journal and start-up (node.c). */
/* Load one record of the state journal (a state_load_cb). */
void node_load_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns);
/* Forget the live files the journal listed (they cannot be trusted to mean
 * "deleted while down" after a reboot or a wiped directory). */
void node_forget_files(struct node *n);
/* At start: files an apply was writing when the daemon died get the oldest
 * possible mtime, so every peer's copy beats them and is sent again. */
void node_reset_suspects(struct node *n);
/* Drop tombstones older than tombstone_ttl that no peer still needs. */
void node_expire_tombs(struct node *n);
/* Rewrite the state journal from the table when it has grown too long. */
int node_compact_state(struct node *n);

#endif
