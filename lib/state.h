/* Persistent tombstones in state_dir (DESIGN.md "Versions, conflicts,
 * deletes"): a destroyed session must never come back from a peer that
 * missed the delete, across restarts, crashes and power loss.
 *
 * Storage: state_dir/tombstones, an append-only text journal, one record a
 * line (session names have no spaces or newlines):
 *     T <kind> <mtime_ns> <hash-hex16> <made_ns> <name>
 *     D <name>
 * A torn last line (crash mid-append) is ignored on load. Appends are
 * written at once and made durable by tomb_store_sync(), which the daemon
 * calls once per loop turn before it sends any reply: a peer never sees an
 * ACK for a delete whose tombstone could still be lost. The journal is
 * compacted at open (write new, fsync, rename, fsync the directory) when it
 * has grown past twice its live records.
 * Non-logging; negative errno returns.
 */
#ifndef SESSYNC_LIB_TOMB_H
#define SESSYNC_LIB_TOMB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

struct tomb_store;

typedef void (*tomb_load_cb)(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v,
                             uint64_t made_ns);

/* Open (creating the journal if missing) and call cb for every live
 * tombstone, in journal order. *ret is new (tomb_store_close). The writer
 * holds state_dir/lock: a second writer gets -EBUSY (one daemon per
 * state_dir). readonly: no lock, no writes (put/del give -EROFS), a missing
 * journal is an empty one; for --full-sync beside a running daemon. */
int tomb_store_open(const char *state_dir, tomb_load_cb cb, void *ctx, bool readonly, struct tomb_store **ret);
int tomb_store_put(struct tomb_store *s, const char *name, uint8_t kind, const struct proto_ver *v);
int tomb_store_del(struct tomb_store *s, const char *name);
/* fdatasync if anything was appended since the last sync. */
int tomb_store_sync(struct tomb_store *s);
void tomb_store_close(struct tomb_store *s);

#endif
