/* The turn cache: the bytes of each file read this turn, shared by every
 * peer it goes to, so a change is read once however many peers need it;
 * and, at the end of the turn, the move of the delta basis
 * (docs/DESIGN.md "Deltas"). The lowest of the node's files: it calls no
 * other. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include "lib/delta.h"
#include "lib/sess.h"

/* Below this a whole file is never larger than a delta: keep no signature. */
#define NODE_DELTA_MIN 512

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
        e->tlen = len;
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
        e->tlen = 0;
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

void node_end_turn(struct node *n) {
        struct node_ent *e;

        while ((e = node_vec_pop(&n->turn_reads))) {
                if (e->tdata && e->kind == VER_KIND_FILE && e->tlen >= NODE_DELTA_MIN && e->sig_hash != e->ver.hash &&
                    sess_hash(e->tdata, e->tlen) == e->ver.hash) {
                        struct delta_sig *sig = NULL;

                        /* The basis moves once a frame carrying this version
                         * has gone to some peer (its has is set when the
                         * frame is queued, not when it is acknowledged). A
                         * peer that then holds an older basis answers a
                         * delta with NEED_FULL and gets the whole file: one
                         * frame more, never a wrong file. */
                        for (size_t i = 0; i < n->n_peers; i++) {
                                if (e->peer[i].has.hash == e->ver.hash && e->peer[i].has_kind == VER_KIND_FILE) {
                                        if (delta_sig_new(e->tdata, e->tlen, &sig) == 0) {
                                                delta_sig_free(e->sig);
                                                e->sig = sig;
                                                e->sig_hash = e->ver.hash;
                                        }
                                        break;
                                }
                        }
                }
                free(e->tdata);
                e->tdata = NULL;
                e->tlen = 0;
                e->tturn = 0;
        }
        n->turn_bytes = 0;
        n->turn++;
}
