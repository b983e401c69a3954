/* The node's table (DESIGN.md "Versions, conflicts, deletes"): one entry
 * per session name, live file or tombstone; recording versions and
 * tombstones (journaled in state_dir), the order between them, and tombstone
 * expiry. Change detection is node_check.c, the per-peer queues
 * node_queue.c. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"
#include "lib/state.h"

int node_new(const struct conf *c, struct loop *l, int dirfd, struct node **ret) {
        struct node *n = calloc(1, sizeof(*n));
        size_t np = c->n_peers ? c->n_peers : 1;

        if (!n)
                return -ENOMEM;
        n->conf = c;
        n->loop = l;
        n->dirfd = dirfd;
        n->n_peers = c->n_peers;
        n->turn = 1;
        n->file_uid = (uid_t)-1;
        n->file_gid = (gid_t)-1;
        n->peers = calloc(np, sizeof(*n->peers));
        n->dirty = calloc(np, sizeof(*n->dirty));
        n->n_dirty = calloc(np, sizeof(*n->n_dirty));
        n->delay = calloc(np, sizeof(*n->delay));
        n->n_delay = calloc(np, sizeof(*n->n_delay));
        n->cap_delay = calloc(np, sizeof(*n->cap_delay));
        n->stats = calloc(np, sizeof(*n->stats));
        n->busy_timer = loop_timer_new(l, node_on_busy_timer, n);
        n->delay_timer = loop_timer_new(l, node_on_delay_timer, n);
        if (!n->peers || !n->dirty || !n->n_dirty || !n->delay || !n->n_delay || !n->cap_delay || !n->stats ||
            !n->busy_timer || !n->delay_timer) {
                node_free(n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static void ent_free(struct ent *e) {
        if (!e)
                return;
        delta_sig_free(e->sig);
        free(e->tdata);
        free(e->name);
        free(e);
}

void node_free(struct node *n) {
        struct ent *e, *tmp;

        if (!n)
                return;
        HASH_ITER(hh, n->table, e, tmp) {
                HASH_DEL(n->table, e);
                ent_free(e);
        }
        for (size_t i = 0; i < n->n_peers; i++) {
                if (n->dirty)
                        free(n->dirty[i].v);
                if (n->delay)
                        free(n->delay[i]);
        }
        free(n->checks.v);
        free(n->busy.v);
        free(n->turn_reads.v);
        free(n->dirty);
        free(n->n_dirty);
        free(n->delay);
        free(n->n_delay);
        free(n->cap_delay);
        free(n->stats);
        free(n->peers);
        if (n->loop) {
                loop_del_timer(n->loop, n->busy_timer);
                loop_del_timer(n->loop, n->delay_timer);
        }
        free(n);
}

struct ent *node_get(struct node *n, const char *name) {
        struct ent *e = NULL;

        HASH_FIND_STR(n->table, name, e);
        return e;
}

struct ent *node_ensure(struct node *n, const char *name) {
        struct ent *e = node_get(n, name);

        if (e)
                return e;
        e = calloc(1, sizeof(*e) + n->n_peers * sizeof(e->peer[0]));
        if (!e)
                return NULL;
        e->name = strdup(name);
        if (!e->name) {
                free(e);
                return NULL;
        }
        e->kind = ENT_NONE;
        for (size_t i = 0; i < n->n_peers; i++)
                e->peer[i].has_kind = ENT_NONE;
        HASH_ADD_KEYPTR(hh, n->table, e->name, strlen(e->name), e);
        return e;
}

/* Change e's kind, keeping the file and tombstone counts right. */
void node_set_kind(struct node *n, struct ent *e, uint8_t kind) {
        if (e->kind == PROTO_KIND_FILE)
                n->n_files--;
        else if (e->kind != ENT_NONE)
                n->n_tombs--;
        if (kind == PROTO_KIND_FILE)
                n->n_files++;
        else if (kind != ENT_NONE)
                n->n_tombs++;
        e->kind = kind;
}

/* Journal every new version of a live file: if it vanishes while the
 * daemon is down, the tombstone made at the next start (local_delete) must
 * carry the exact version the peers hold, and its age decides logout or
 * expiry. One short write() per change, no fsync: only a process crash has
 * to be survived (see lib/state.h). */
static void journal_file(struct node *n, struct ent *e, const struct proto_ver *v) {
        int r;

        if (!n->state)
                return;
        if ((r = state_put(n->state, e->name, PROTO_KIND_FILE, v)) < 0)
                log_warn("\"%s\": cannot write the state journal: %s", e->name, strerror(-r));
}

void node_record_file(struct node *n, struct ent *e, const struct proto_ver *v, size_t size, bool from_peer) {
        /* Also replaces a tombstone's record when a newer file beat it. */
        journal_file(n, e, v);
        node_set_kind(n, e, PROTO_KIND_FILE);
        e->ver = *v;
        e->size = (uint32_t)size;
        e->from_peer = from_peer;
        e->tomb_ns = 0;
        if (e->tturn == n->turn && sess_hash(e->tdata, e->tlen) != v->hash) {
                free(e->tdata);   /* the turn's cached bytes are not this version */
                e->tdata = NULL;
                e->tlen = 0;
                e->tturn = 0;
        }
}

int node_record_tomb(struct node *n, struct ent *e, uint8_t kind, const struct proto_ver *v, bool from_peer) {
        int r;

        if (n->state && (r = state_put(n->state, e->name, kind, v)) < 0) {
                log_error("\"%s\": cannot persist tombstone: %s", e->name, strerror(-r));
                return r;
        }
        node_set_kind(n, e, kind);
        e->ver = *v;
        e->size = 0;
        e->from_peer = from_peer;
        e->tomb_ns = loop_realtime_ns();
        delta_sig_free(e->sig);
        e->sig = NULL;
        e->sig_hash = 0;
        return 0;
}

bool node_ver_forgettable(const struct node *n, const struct proto_ver *v) {
        uint64_t now = loop_realtime_ns(), ttl = n->conf->tombstone_ttl_ms * 1000000ull;

        return now > ttl && v->mtime_ns < now - ttl;
}

bool node_tomb_beats(uint8_t kind, const struct proto_ver *t, const struct proto_ver *v) {
        if (kind == PROTO_KIND_DESTROY)
                return v->mtime_ns < t->mtime_ns;
        if (kind == PROTO_KIND_EXPIRE)
                return proto_ver_cmp(v, t) <= 0;
        return false;
}

bool node_state_beats(uint8_t kind_a, const struct proto_ver *a, uint8_t kind_b, const struct proto_ver *b) {
        if (kind_a == ENT_NONE)
                return false;
        if (kind_b == ENT_NONE)
                return true;
        if (kind_a == PROTO_KIND_FILE && kind_b == PROTO_KIND_FILE)
                return proto_ver_cmp(a, b) > 0;
        if (kind_a != PROTO_KIND_FILE && kind_b == PROTO_KIND_FILE)
                return node_tomb_beats(kind_a, a, b);
        if (kind_a == PROTO_KIND_FILE)
                return !node_tomb_beats(kind_b, b, a);
        /* Two tombstones: both sides have deleted; nothing to send. */
        return false;
}

void node_expire_tombs(struct node *n) {
        uint64_t now = loop_realtime_ns(), ttl = n->conf->tombstone_ttl_ms * 1000000ull;
        struct ent *e, *tmp;

        HASH_ITER(hh, n->table, e, tmp) {
                bool held = e->checking || e->tturn;

                if (e->kind == PROTO_KIND_FILE)
                        continue;
                if (e->kind != ENT_NONE && (now < e->tomb_ns || now - e->tomb_ns < ttl))
                        continue;
                for (size_t i = 0; i < n->n_peers && !held; i++)
                        held = e->peer[i].queued || e->peer[i].delayed;   /* still referenced */
                if (held)
                        continue;
                if (e->kind != ENT_NONE && n->state)
                        (void)state_del(n->state, e->name);
                node_set_kind(n, e, ENT_NONE);
                HASH_DEL(n->table, e);
                ent_free(e);
        }
}

void node_load_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct node *n = ctx;
        struct ent *e = node_ensure(n, name);

        if (!e)
                return;
        if (kind == STATE_KIND_APPLYING) {
                node_set_kind(n, e, ENT_NONE);
                e->suspect = true;
                return;
        }
        node_set_kind(n, e, kind);
        e->ver = *v;
        if (kind != PROTO_KIND_FILE)
                e->tomb_ns = made_ns;
}

void node_forget_files(struct node *n) {
        for (struct ent *e = n->table; e; e = e->hh.next) {
                if (e->kind == PROTO_KIND_FILE)
                        node_set_kind(n, e, ENT_NONE);
        }
}

static int table_next(void *ctx, const char **name, uint8_t *kind, struct proto_ver *v, uint64_t *made) {
        struct ent **cur = ctx;

        while (*cur && (*cur)->kind == ENT_NONE)
                *cur = (*cur)->hh.next;
        if (!*cur)
                return 0;
        *name = (*cur)->name;
        *kind = (*cur)->kind;
        *v = (*cur)->ver;
        *made = (*cur)->kind == PROTO_KIND_FILE ? 0 : (*cur)->tomb_ns;
        *cur = (*cur)->hh.next;
        return 1;
}

int node_compact_state(struct node *n) {
        struct ent *cur = n->table;

        if (!n->state || !state_want_compact(n->state, n->n_files + n->n_tombs))
                return 0;
        return state_compact(n->state, table_next, &cur);
}

void node_journal_applying(struct node *n, struct ent *e, const struct proto_ver *v) {
        int r;

        if (n->state && (r = state_put(n->state, e->name, STATE_KIND_APPLYING, v)) < 0)
                log_warn("\"%s\": cannot write the state journal: %s", e->name, strerror(-r));
}

void node_journal_restore(struct node *n, struct ent *e) {
        int r;

        if (!n->state)
                return;
        r = e->kind == ENT_NONE ? state_del(n->state, e->name) : state_put(n->state, e->name, e->kind, &e->ver);
        if (r < 0)
                log_warn("\"%s\": cannot write the state journal: %s", e->name, strerror(-r));
}

void node_reset_suspects(struct node *n) {
        for (struct ent *e = n->table; e; e = e->hh.next) {
                struct sess_file f = SESS_FILE_INIT;
                int r;

                if (!e->suspect)
                        continue;
                e->suspect = false;
                r = sess_open(n->dirfd, e->name, SESS_EXCL, n->conf->max_file_size, &f);
                if (r == -ENOENT)
                        continue;
                if (r == 0)
                        r = sess_set_mtime(&f, 1);
                sess_release(n->dirfd, e->name, &f);
                if (r < 0)
                        log_warn("\"%s\": was being written when sessyncd stopped, and cannot be reset: %s",
                                 e->name, strerror(-r));
                else
                        log_warn("\"%s\": was being written when sessyncd stopped; its peers' copy will replace it",
                                 e->name);
        }
}
