/* The node's state on real disk (docs/DESIGN.md "Versions, conflicts, deletes"):
 * tombstones, so a destroyed session never comes back from a peer that
 * missed the delete, across restarts, crashes and power loss; and the names
 * of live session files with their versions, so that a file deleted while
 * the daemon was down (stopped or killed) is noticed at the next start and
 * becomes a tombstone, instead of being pushed back by a peer's catch-up.
 *
 * Storage: state_dir/journal, an append-only text journal, one record a
 * line (session names have no spaces or newlines):
 *     T <kind> <mtime_ns> <hash-hex16> <made_ns> <name>   kind 0 file, 1 destroy, 2 expire,
 *                                                         9 a peer's version being written,
 *                                                         17, 18 a destroy, an expiry of a name
 *                                                         never had (STATE_UNSEEN), 10 with
 *                                                         name "-": the watermark of those forgotten
 *     D <name>                                            forget name
 * The last record of a name wins. A torn last line (crash mid-append) is
 * cut off at open.
 *
 * Durability: tombstone records are made durable by state_sync(), which the
 * daemon calls once per loop turn before it sends any reply, so a peer never
 * sees an ACK for a delete whose tombstone could still be lost. File records
 * are not synced: they only have to survive a process crash (the page cache
 * does), because after a power loss or reboot the session tmpfs is empty and
 * nothing is inferred from it (see state_new_boot).
 *
 * The journal is compacted (write new, fsync, rename, fsync the directory)
 * at open when it has grown past twice its live records, and at run time
 * when state_want_compact() says so, from the caller's own records.
 * Non-logging; negative errno returns.
 */
#ifndef SESSYNC_LIB_STATE_H
#define SESSYNC_LIB_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

struct state;

/* Journal kind of "this name is being overwritten with a peer's version":
 * written before an apply touches the file and superseded by the file
 * record after it. Found last at start, it means the daemon died mid-write
 * and the file's bytes and mtime cannot be trusted. */
#define STATE_KIND_APPLYING 9
/* docs/DESIGN.md "Names never seen": a tombstone of a name this node never
 * had is journaled as its kind | STATE_UNSEEN, so a restart puts it back in
 * the bounded set; and the watermark of the ones forgotten is the record of
 * kind STATE_KIND_MARK under the name STATE_MARK_NAME (never a session
 * name: none is one character long). An older sessyncd skips both. */
#define STATE_UNSEEN 0x10
#define STATE_KIND_MARK 10
#define STATE_MARK_NAME "-"

typedef void (*state_load_cb)(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v,
                              uint64_t made_ns);

/* Open (creating the journal if missing) and call cb for every live record,
 * in journal order. *ret is new (state_close). The writer holds
 * state_dir/lock: a second writer gets -EBUSY (one daemon per state_dir).
 * readonly: no lock, no writes (put/del give -EROFS), a missing journal is
 * an empty one; for --full-sync beside a running daemon.
 * A writer refuses (-EPERM) a state_dir that is not its own or root's or
 * that group or others can write, and (-EMLINK, -EPERM) a journal, lock or
 * boot id file with a second hard link or a foreign owner: a write through
 * one would land outside. */
int state_open(const char *state_dir, state_load_cb cb, void *ctx, bool readonly, struct state **ret);
/* Record name as kind (PROTO_KIND_FILE, _DESTROY or _EXPIRE) at version v.
 * The caller has validated name (sess_name_valid). */
int state_put(struct state *s, const char *name, uint8_t kind, const struct proto_ver *v);
int state_del(struct state *s, const char *name);
/* fdatasync if a tombstone was appended since the last sync. */
int state_sync(struct state *s);
void state_close(struct state *s);

/* True when this is the first writer open since the machine booted (the
 * boot id in state_dir differs from the kernel's; it is updated at open).
 * After a reboot a tmpfs session dir starts empty: missing files then mean
 * nothing. */
bool state_new_boot(const struct state *s);

/* Runtime compaction: when the journal holds more than twice the live
 * records (plus slack), rewrite it from the caller's records. next fills one
 * record and returns 1, or returns 0 at the end. */
typedef int (*state_next_cb)(void *ctx, const char **name, uint8_t *kind, struct proto_ver *v, uint64_t *made_ns);
bool state_want_compact(const struct state *s, size_t live);
int state_compact(struct state *s, state_next_cb next, void *ctx);

#endif
