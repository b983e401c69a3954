/* Bounded state for names this node never had (docs/DESIGN.md "Names never
 * seen"). A DELETE for such a name carries no data to protect; its
 * tombstone only stops an older copy, arriving later from another peer,
 * from bringing the logout back here. So:
 *  - these tombstones are kept in a heap of at most unseen_max, by what
 *    each covers; the one covering least is forgotten early, and the
 *    watermark (unseen_mark) rises to what it covered: a FILE, DELTA or
 *    TOUCH for a name this node holds nothing for, at or below the mark, is
 *    refused as an expiry of its own version, as a version older than
 *    tombstone_ttl is. Nothing the forgotten tombstone beat can come back,
 *    and the table stays bounded;
 *  - a tombstone the mark already covers is not kept at all; one that
 *    covers past our clock (and clock_skew_warn) is not kept yet (RETRY):
 *    forgotten, it would lift the mark past the clock, over every new
 *    session;
 *  - a file a peer's FILE created here, and PHP has not written since, is
 *    such a name too when a peer deletes it: else a key's FILE and DELETE
 *    of each new name would leave tombstones past every bound;
 *  - each peer has a budget of such tombstones: new_burst at once,
 *    new_rate a second. Past it the DELETE is answered RETRY: an honest
 *    peer sends it again a second later, nothing is lost, and the journal
 *    grows at most that fast;
 *  - a file is created, or grown by a page, only while the session
 *    filesystem keeps a reserve free (1/16 of its blocks and inodes) for PHP's own writes; else RETRY.
 *    Files need no budget: new sessions, a full sync to an empty node are
 *    honest floods, and what is on disk bounds the table.
 * Calls node.c only. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <sys/statvfs.h>

#include "daemon/log.h"
#include "lib/state.h"
#include "daemon/loop.h"
#include "lib/ver.h"

bool node_unseen_covered(const struct node *n, const struct proto_ver *v) {
        return n->unseen_marked && ver_cmp(v, &n->unseen_mark) <= 0;
}

bool node_unseen_tomb_covered(const struct node *n, uint8_t kind, const struct proto_ver *v) {
        struct proto_ver c;

        return !ver_tomb_cover(kind, v, &c) || node_unseen_covered(n, &c);
}

bool node_new_name_allowed(struct node *n, size_t idx) {
        struct node_peer *np = &n->peer[idx];
        uint64_t now = loop_clock_ms();

        if (!np->new_ms || now < np->new_ms) {
                np->new_ms = now;
                np->new_tokens = n->new_burst;
        } else if (now > np->new_ms) {
                uint64_t add = (now - np->new_ms) * n->new_rate / 1000;

                if (add > 0) {
                        np->new_tokens = np->new_tokens + add > n->new_burst ? n->new_burst : np->new_tokens + add;
                        np->new_ms = now;
                }
        }
        if (np->new_tokens == 0) {
                np->stats.refused_new++;
                if (!np->new_warned) {
                        log_warn("peer \"%s\": more than %u deletes a second of sessions never seen here; answering "
                                 "RETRY (counted as refused_new), logged once", n->conf->peers[idx].name,
                                 (unsigned)n->new_rate);
                        np->new_warned = true;
                }
                return false;
        }
        np->new_tokens--;
        return true;
}

bool node_space_reserved(struct node *n, size_t idx, uint64_t bytes) {
        struct statvfs sv;
        uint64_t need;

        if (fstatvfs(n->dirfd, &sv) < 0)
                return true;   /* cannot tell: the write itself will fail cleanly (ENOSPC) */
        /* What is left after this write, not before it: else one file of
         * max_file_size could take the reserve. */
        need = sv.f_frsize ? (bytes + sv.f_frsize - 1) / sv.f_frsize : 0;
        if (sv.f_bavail >= need && sv.f_bavail - need >= sv.f_blocks / 16 &&
            (sv.f_files == 0 || sv.f_favail >= sv.f_files / 16)) {
                n->space_warned = false;   /* the next shortage is worth a line again */
                return true;
        }
        n->peer[idx].stats.refused_new++;
        if (!n->space_warned) {
                log_warn("session directory: less than 1/16 of its space or inodes free; new or growing sessions from "
                         "peers are answered RETRY until there is (PHP's own writes come first)");
                n->space_warned = true;
        }
        return false;
}

void node_unseen_raise(struct node *n, const struct proto_ver *v) {
        int r;

        if (n->unseen_marked && ver_cmp(v, &n->unseen_mark) <= 0)
                return;
        n->unseen_mark = *v;
        n->unseen_marked = true;
        /* Journaled (and synced with this turn's tombstones) before the
         * forgotten one's record goes: a restart keeps refusing what it
         * beat. */
        if (n->state && (r = state_put(n->state, STATE_MARK_NAME, STATE_KIND_MARK, v)) < 0)
                log_error("cannot persist the watermark of names never seen: %s", strerror(-r));
}

int node_unseen_add(struct node *n, struct node_ent *e) {
        struct node_ent *old;
        int r;

        if (e->unseen_at) {
                node_unseen_heap_fix(n, e);
                return 0;
        }
        if ((r = node_unseen_heap_add(n, e)) < 0)
                return r;

        /* The one covering least goes first, so the watermark stays as low
         * as the bound allows; never the one just kept (the caller holds it). */
        while (n->n_unseen > n->unseen_max && (old = node_unseen_heap_min(n)) != e) {
                struct proto_ver c;

                if (ver_tomb_cover(old->kind, &old->ver, &c)) {
                        /* Never up to our clock (at most now minus
                         * clock_skew_warn): a key stamping DELETEs ahead
                         * cannot hold back every new session with it, even
                         * by flooding on. What a forgotten one beat above
                         * that (versions of the last seconds, a node ahead's
                         * own) is then unguarded: only past the bound, that
                         * is under a flood by a key that can write any
                         * session anyway. */
                        uint64_t now = loop_realtime_ns(), skew = n->conf->clock_skew_warn_ms * 1000000ull;
                        uint64_t cap = now > skew ? now - skew : 0;

                        if (c.mtime_ns > cap)
                                c = (struct proto_ver){ .mtime_ns = cap, .hash = UINT64_MAX };
                        node_unseen_raise(n, &c);
                }
                n->unseen_forgotten_total++;
                node_forget(n, old);   /* out of the heap (node_set_kind) */
        }
        return 0;
}
