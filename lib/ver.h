/* Who wins: every rule between two versions, or a version and a tombstone
 * (docs/DESIGN.md "Versions, conflicts, deletes"). Pure functions: the
 * clock and the TTLs are arguments, so the sender, the receiver and
 * catch-up decide alike and tests/test_ver.c can check the rules as
 * properties (antisymmetry, transitivity, a tombstone beats every version
 * it deleted).
 *
 * A state is a kind and a version:
 *   VER_KIND_FILE     a live file; v is (origin's mtime ns, content hash)
 *   VER_KIND_DESTROY  a logout; v.mtime_ns is when it was deleted
 *   VER_KIND_EXPIRE   PHP's GC removed it; v is the deleted file's version
 *   VER_KIND_NONE     nothing known (never on the wire)
 */
#ifndef SESSYNC_LIB_VER_H
#define SESSYNC_LIB_VER_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/msg.h"

enum {
        VER_KIND_FILE = PROTO_KIND_FILE,
        VER_KIND_DESTROY = PROTO_KIND_DESTROY,
        VER_KIND_EXPIRE = PROTO_KIND_EXPIRE,
        VER_KIND_NONE = 0xff,
};

static inline bool ver_is_tomb(uint8_t kind) {
        return kind == VER_KIND_DESTROY || kind == VER_KIND_EXPIRE;
}

/* Order of file versions: newer mtime wins; equal mtime, higher hash wins
 * (last writer wins, ties broken by content so every node agrees).
 * Returns <0, 0, >0 like memcmp. */
int ver_cmp(const struct proto_ver *a, const struct proto_ver *b);

/* Does the tombstone (kind, t) beat the file version v? A destroy beats
 * every version older than the delete; an expiry only the versions up to
 * the one it deleted, so a copy that went stale during a partition cannot
 * log out a user who stayed active elsewhere. false if kind is no
 * tombstone. */
bool ver_tomb_beats(uint8_t kind, const struct proto_ver *t, const struct proto_ver *v);

/* Does state a beat state b, i.e. must the holder of a send it to the
 * holder of b? NONE never beats; anything beats NONE; two tombstones never
 * beat each other (both sides have deleted: nothing to send). */
bool ver_state_beats(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b);

/* What tombstone (kind, t) covers: the highest version it beats, in *ret
 * (a destroy at T: (T - 1, MAX); an expiry: its version). false, and *ret
 * untouched, when it beats nothing (a destroy at 0, or no tombstone). */
bool ver_tomb_cover(uint8_t kind, const struct proto_ver *t, struct proto_ver *ret);

/* Of the tombstone a and the state b (a tombstone or not), is a the one to
 * keep? Any tombstone is stronger than a non-tombstone; of two, the one
 * that covers more versions (a destroy at T covers up to (T - 1, MAX), an
 * expiry up to its version), so the kept one beats every version the other
 * beat; equal cover: a destroy over an expiry, then the higher hash (a
 * total order, so every node keeps the same). */
bool ver_tomb_stronger(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b);

/* Is v older than ttl_ns at now_ns? Such a version is never sent nor
 * applied: a logout of it may already be forgotten (tombstones live that
 * long), and PHP's GC takes it for garbage (tombstone_ttl >
 * session_lifetime). */
bool ver_forgettable(const struct proto_ver *v, uint64_t now_ns, uint64_t ttl_ns);

/* Is v more than ahead_ns ahead of now_ns? One bad clock (or a hostile
 * peer) would otherwise win every comparison for as long as it is ahead. */
bool ver_too_new(const struct proto_ver *v, uint64_t now_ns, uint64_t ahead_ns);

/* The tombstone for a live file at version file that disappeared here at
 * now_ns: an expiry carrying the file's version if it was at least
 * lifetime_ns old (PHP's GC), else a destroy (a logout) stamped
 * max(now_ns, file's mtime + 1): never before the version it deleted, so no
 * clock skew a receiver accepts lets that version beat its logout (a file
 * at mtime UINT64_MAX: an expiry of (MAX, MAX), which beats everything).
 * Writes *ret_kind and *ret_v. */
void ver_delete(const struct proto_ver *file, uint64_t now_ns, uint64_t lifetime_ns, uint8_t *ret_kind,
                struct proto_ver *ret_v);

#endif
