/* The turn cache: the bytes of each file read this turn, and the delta
 * made from them, shared by every peer they go to, so a change is read and
 * encoded once however many peers need it; and the delta bases: at the end
 * of the turn the newest moves forward, the one before it is kept while a
 * lagging peer still holds it (docs/DESIGN.md "The basis"). The lowest of
 * the node's files: it calls no other. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"

/* Below this a whole file is never larger than a delta: keep no signature. */
#define NODE_DELTA_MIN 512

/* An older basis serves a peer that was sent the newest version a few
 * turns after another peer (its window was full, it was busy). Only peers
 * heard from within NODE_OLDER_MS count as holding a basis: a peer that is
 * down would otherwise make the sender keep a second signature of every
 * session changed meanwhile (its catch-up at connect tells what it holds).
 * An older basis is kept at most that long, and all of them within
 * NODE_OLDER_BYTES, oldest dropped first: 8 MB is ~15,000 older bases of a
 * 4.8 KB session (a signature is ~12 bytes per 128-byte block), what a
 * peer 2.5 s behind at 6,000 changes/s needs. */
#define NODE_OLDER_MS 30000
#define NODE_OLDER_BYTES (8u << 20)

/* Bytes of files one turn may keep for its peers. A rescan looks at every
 * file in one turn; without a cap the daemon would briefly hold the whole
 * session tmpfs in memory. Past it, senders wait for the next turn. */
#define NODE_TURN_BYTES (16u << 20)

void node_turn_keep(struct node *n, struct node_ent *e, uint8_t *data, size_t len) {
        if (e->tturn != n->turn && n->turn_bytes + len > NODE_TURN_BYTES) {
                free(data);
                return;
        }
        n->turn_bytes += len;
        free(e->tdata);
        e->tdata = data;
        e->tlen = (uint32_t)len;   /* <= max_file_size (15 MB at most) */
        e->tdlen = 0;
        if (e->tturn != n->turn) {
                e->tturn = n->turn;
                if (node_vec_push(&n->turn_reads, e) < 0) {
                        free(e->tdata);   /* no cache, read again: correct, slower */
                        e->tdata = NULL;
                        e->tlen = 0;
                        e->tturn = 0;
                }
        }
}

/* e may stay in turn_reads; node_end_turn skips it. Entries are freed only
 * between turns (tombstone expiry runs from a timer), when turn_reads is
 * empty. */
void node_turn_drop(struct node *n, struct node_ent *e) {
        (void)n;
        free(e->tdata);
        e->tdata = NULL;
        e->tlen = e->tdlen = 0;
        e->tturn = 0;
}

int node_turn_read(struct node *n, struct node_ent *e, const uint8_t **ret_data, size_t *ret_len) {
        struct sess_file f = SESS_FILE_INIT;
        int r;

        if (e->tturn != n->turn) {
                r = node_open(n, e, SESS_SHARED, n->conf->max_file_size, &f);
                if (r == -ELOOP || r == -EISDIR || r == -EINVAL)
                        r = -ENOENT;
                if (r < 0)
                        return r;
                if (ver_cmp(&f.ver, &e->ver) != 0) {
                        sess_release(n->dirfd, e->name, &f);
                        return -ESTALE;
                }
                node_turn_keep(n, e, f.data, f.len);
                f.data = NULL;
                sess_release(n->dirfd, e->name, &f);
                if (e->tturn != n->turn)
                        return -ENOBUFS;   /* over this turn's cap: send it next turn */
        }
        *ret_data = e->tdata;
        *ret_len = e->tlen;
        return 0;
}

/* Does a connected peer hold the version whose content hash is h (as far
 * as the sender knows: has is set when a frame is queued)? Only such a
 * basis is worth a signature. */
static bool held(const struct node *n, const struct node_ent *e, uint64_t h, uint64_t now) {
        for (size_t i = 0; i < n->n_peers; i++)
                if (!e->peer[i].full && e->peer[i].has_kind == VER_KIND_FILE && e->peer[i].has.hash == h &&
                    now - n->peer[i].live_ms < NODE_OLDER_MS)
                        return true;
        return false;
}

static void older_free(struct node *n, struct node_older *o) {
        if (!o)
                return;
        if (o->prev)
                o->prev->next = o->next;
        else
                n->older_head = o->next;
        if (o->next)
                o->next->prev = o->prev;
        else
                n->older_tail = o->prev;
        n->older_bytes -= sizeof(*o) + delta_sig_size(o->sig);
        o->e->older = NULL;
        if (o->e->tdelta_older)
                o->e->tdlen = 0;   /* the cached delta was against it */
        delta_sig_free(o->sig);
        free(o);
}

/* sig (owned), the signature of the basis with content hash h, stops being
 * e's newest: keep it as e's older basis if a peer holds it. */
static void older_keep(struct node *n, struct node_ent *e, struct delta_sig *sig, uint64_t h, uint64_t now) {
        struct node_older *o;

        if (!sig || !held(n, e, h, now) || !(o = calloc(1, sizeof(*o)))) {
                delta_sig_free(sig);
                return;
        }
        older_free(n, e->older);   /* one older basis per entry: the newer of the two */
        o->e = e;
        o->sig = sig;
        o->hash = h;
        o->since_ms = now;
        o->prev = n->older_tail;
        if (n->older_tail)
                n->older_tail->next = o;
        else
                n->older_head = o;
        n->older_tail = o;
        n->older_bytes += sizeof(*o) + delta_sig_size(sig);
        e->older = o;
}

void node_basis_free(struct node *n, struct node_ent *e) {
        older_free(n, e->older);
        delta_sig_free(e->sig);
        e->sig = NULL;
        e->sig_hash = 0;
        e->tdlen = 0;
}

int node_turn_delta(struct node *n, struct node_ent *e, uint64_t basis, const uint8_t **ret_data,
                    const uint8_t **ret_delta, size_t *ret_dlen, bool *ret_older) {
        const struct delta_sig *sig;
        bool older = false;
        uint8_t *d = NULL, *p;
        size_t dlen = 0;
        int r;

        if (e->sig && e->sig_hash == basis)
                sig = e->sig;
        else if (e->older && e->older->hash == basis)
                sig = e->older->sig, older = true;
        else
                return -ENOENT;
        if (e->tturn != n->turn)
                return -ESTALE;   /* no read this turn: the caller broke the contract */
        if (!e->tdlen || e->tdelta_older != older) {
                if ((r = delta_make(sig, e->tdata, e->tlen, &d, &dlen)) < 0)
                        return r;
                /* Kept after the file's bytes, in the same buffer. */
                p = dlen <= UINT32_MAX - e->tlen ? realloc(e->tdata, (size_t)e->tlen + dlen) : NULL;
                if (!p) {
                        free(d);
                        return -ENOMEM;
                }
                memcpy(p + e->tlen, d, dlen);
                free(d);
                n->turn_bytes += dlen;
                e->tdata = p;
                e->tdlen = (uint32_t)dlen;
                e->tdelta_older = older;
        }
        *ret_data = e->tdata;
        *ret_delta = e->tdata + e->tlen;
        *ret_dlen = e->tdlen;
        *ret_older = older;
        return 0;
}

void node_end_turn(struct node *n) {
        struct node_ent *e;
        uint64_t now = loop_clock_ms();

        while ((e = node_vec_pop(&n->turn_reads))) {
                if (e->tdata && e->kind == VER_KIND_FILE && e->tlen >= NODE_DELTA_MIN && e->sig_hash != e->ver.hash &&
                    held(n, e, e->ver.hash, now) && sess_hash(e->tdata, e->tlen) == e->ver.hash) {
                        struct delta_sig *sig = NULL;

                        /* The newest basis moves once a frame carrying this
                         * version has gone to some peer (its has is set when
                         * the frame is queued, not when it is acknowledged).
                         * The basis it replaces stays as e's older one while
                         * a peer still holds it: a peer sent this version a
                         * turn later still gets a delta. A peer that in fact
                         * holds neither answers a delta with NEED_FULL and
                         * gets the whole file: one frame more, never a wrong
                         * file. */
                        if (delta_sig_new(e->tdata, e->tlen, &sig) == 0) {
                                older_keep(n, e, e->sig, e->sig_hash, now);
                                e->sig = sig;
                                e->sig_hash = e->ver.hash;
                        }
                }
                if (e->older && !held(n, e, e->older->hash, now))
                        older_free(n, e->older);   /* the lagging peer has been sent a newer one */
                free(e->tdata);
                e->tdata = NULL;
                e->tlen = e->tdlen = 0;
                e->tturn = 0;
        }
        while (n->older_head && (n->older_bytes > NODE_OLDER_BYTES || now - n->older_head->since_ms >= NODE_OLDER_MS))
                older_free(n, n->older_head);
        n->turn_bytes = 0;
        n->turn++;
}
