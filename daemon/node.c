/* The node's table (docs/DESIGN.md "Versions, conflicts, deletes"): one
 * entry per session name, live file or tombstone; recording versions and
 * tombstones (journaled in state_dir), tombstone expiry, the journal at
 * start. Who wins is lib/ver.h; the other node files are listed in
 * node_int.h. */
#include "daemon/node.h"
#include "daemon/node_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"
#include "lib/state.h"
#include "lib/ver.h"

/* docs/DESIGN.md "Names never seen": at most this many tombstones for
 * names never had here (~300 bytes each: ~10 MB); per peer, this many of
 * them at once (an honest catch-up fills the set at full speed), then this
 * many a second. */
#define NODE_UNSEEN_MAX 32768
#define NODE_NEW_RATE 1000
#define NODE_NEW_BURST NODE_UNSEEN_MAX

int node_new(const struct conf *c, struct loop *l, int dirfd, struct node **ret) {
        struct node *n = calloc(1, sizeof(*n));

        if (!n)
                return -ENOMEM;
        n->conf = c;
        n->loop = l;
        n->dirfd = dirfd;
        n->n_peers = c->n_peers;
        n->turn = 1;
        n->start_ms = loop_clock_ms();
        n->durable = true;
        n->php_uid = geteuid();
        n->php_gid = getegid();
        n->unseen_max = NODE_UNSEEN_MAX;
        n->new_rate = NODE_NEW_RATE;
        n->new_burst = NODE_NEW_BURST;
        n->peer = calloc(c->n_peers ? c->n_peers : 1, sizeof(*n->peer));
        if (!n->peer) {
                free(n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

void node_set_state(struct node *n, struct state *s) {
        n->state = s;
}

void node_set_php_user(struct node *n, uid_t uid, gid_t gid) {
        n->php_uid = uid;
        n->php_gid = gid;
        n->give_away = uid != geteuid();
}

const struct conf *node_conf(const struct node *n) {
        return n->conf;
}

size_t node_n_files(const struct node *n) {
        return n->n_files;
}

size_t node_n_tombs(const struct node *n) {
        return n->n_tombs;
}

size_t node_n_skipped(const struct node *n) {
        return n->n_skipped;
}

uint64_t node_skipped_total(const struct node *n) {
        return n->skipped_total;
}


size_t node_n_unreadable(const struct node *n) {
        return n->n_unreadable;
}

uint64_t node_unreadable_total(const struct node *n) {
        return n->unreadable_total;
}

uint64_t node_lock_retries_total(const struct node *n) {
        return n->lock_retries_total;
}

size_t node_n_unseen(const struct node *n) {
        return n->n_unseen;
}

uint64_t node_unseen_forgotten_total(const struct node *n) {
        return n->unseen_forgotten_total;
}

const struct node_stats *node_stats(const struct node *n, size_t idx) {
        return &n->peer[idx].stats;
}

void node_count(struct node *n, size_t idx, enum node_stat which) {
        struct node_stats *st = &n->peer[idx].stats;

        switch (which) {
        case NODE_STAT_SENT: st->sent++; break;
        case NODE_STAT_ERRORS: st->errors++; break;
        }
}

size_t node_pending(const struct node *n, size_t idx) {
        return n->peer[idx].n_dirty + n->peer[idx].n_delay;
}

static void ent_free(struct node *n, struct node_ent *e) {
        if (!e)
                return;
        node_turn_drop(n, e);
        node_basis_free(n, e);
        if (e->peer != (struct node_ent_peer *)(e + 1))
                free(e->peer);   /* a reload moved it (node_peers.c) */
        free(e->name);
        free(e);
}

void node_free(struct node *n) {
        struct node_ent *e, *tmp;

        if (!n)
                return;
        HASH_ITER(hh, n->table, e, tmp) {
                HASH_DEL(n->table, e);
                ent_free(n, e);
        }
        for (size_t i = 0; i < n->n_peers; i++) {
                free(n->peer[i].dirty.v);
                free(n->peer[i].delay);
        }
        free(n->checks.v);
        free(n->busy.v);
        free(n->unseen);
        free(n->turn_reads.v);
        free(n->peer);
        if (n->loop) {
                loop_del_timer(n->loop, n->busy_timer);
                loop_del_timer(n->loop, n->delay_timer);
        }
        free(n);
}

struct node_ent *node_get(struct node *n, const char *name) {
        struct node_ent *e = NULL;

        HASH_FIND_STR(n->table, name, e);
        return e;
}

struct node_ent *node_ensure(struct node *n, const char *name) {
        struct node_ent *e = node_get(n, name);

        if (e)
                return e;
        e = calloc(1, sizeof(*e) + n->n_peers * sizeof(e->peer[0]));
        if (!e)
                return NULL;
        e->peer = (struct node_ent_peer *)(e + 1);
        e->name = strdup(name);
        if (!e->name) {
                free(e);
                return NULL;
        }
        e->kind = VER_KIND_NONE;
        (void)sess_tag(name, e->tag);
        for (size_t i = 0; i < n->n_peers; i++)
                e->peer[i].has_kind = VER_KIND_NONE;
        HASH_ADD_KEYPTR(hh, n->table, e->name, strlen(e->name), e);
        return e;
}

/* The heap of tombstones for names never had here (node_unseen.c), by
 * what each covers (ver_tomb_cover), least first. */
static bool heap_less(const struct node_ent *a, const struct node_ent *b) {
        struct proto_ver ca = { 0, 0 }, cb = { 0, 0 };

        (void)ver_tomb_cover(a->kind, &a->ver, &ca);
        (void)ver_tomb_cover(b->kind, &b->ver, &cb);
        return ver_cmp(&ca, &cb) < 0;
}

static void heap_set(struct node *n, size_t i, struct node_ent *e) {
        n->unseen[i] = e;
        e->unseen_at = i + 1;
}

static void heap_up(struct node *n, size_t i) {
        struct node_ent *e = n->unseen[i];

        while (i > 0 && heap_less(e, n->unseen[(i - 1) / 2])) {
                heap_set(n, i, n->unseen[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        heap_set(n, i, e);
}

static void heap_down(struct node *n, size_t i) {
        struct node_ent *e = n->unseen[i];

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= n->n_unseen)
                        break;
                if (c + 1 < n->n_unseen && heap_less(n->unseen[c + 1], n->unseen[c]))
                        c++;
                if (!heap_less(n->unseen[c], e))
                        break;
                heap_set(n, i, n->unseen[c]);
                i = c;
        }
        heap_set(n, i, e);
}

int node_unseen_heap_add(struct node *n, struct node_ent *e) {
        if (n->n_unseen == n->cap_unseen) {
                size_t cap = n->cap_unseen ? n->cap_unseen * 2 : 256;
                struct node_ent **p = realloc(n->unseen, cap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                n->unseen = p;
                n->cap_unseen = cap;
        }
        heap_set(n, n->n_unseen++, e);
        heap_up(n, n->n_unseen - 1);
        return 0;
}

void node_unseen_heap_fix(struct node *n, struct node_ent *e) {
        if (e->unseen_at)
                heap_down(n, e->unseen_at - 1);   /* a stronger tombstone only covers more */
}

struct node_ent *node_unseen_heap_min(const struct node *n) {
        return n->n_unseen ? n->unseen[0] : NULL;
}

static void heap_remove(struct node *n, struct node_ent *e) {
        size_t i = e->unseen_at - 1;
        struct node_ent *last = n->unseen[--n->n_unseen];

        e->unseen_at = 0;
        if (last == e)
                return;
        heap_set(n, i, last);
        heap_up(n, i);
        heap_down(n, last->unseen_at - 1);
}

/* Change e's kind, keeping the file and tombstone counts right. */
void node_set_kind(struct node *n, struct node_ent *e, uint8_t kind) {
        if (e->unseen_at && !ver_is_tomb(kind))
                heap_remove(n, e);   /* a file now, or forgotten: no longer a name never seen */
        if (e->kind == VER_KIND_FILE)
                n->n_files--;
        else if (e->kind != VER_KIND_NONE)
                n->n_tombs--;
        if (kind == VER_KIND_FILE)
                n->n_files++;
        else if (kind != VER_KIND_NONE)
                n->n_tombs++;
        e->kind = kind;
}

/* Journal every new version of a live file: if it vanishes while the
 * daemon is down, the tombstone made at the next start (local_delete) must
 * carry the exact version the peers hold, and its age decides logout or
 * expiry. One short write() per change, no fsync: only a process crash has
 * to be survived (see lib/state.h). */
static void journal_file(struct node *n, struct node_ent *e, const struct proto_ver *v) {
        int r;

        if (!n->state)
                return;
        if ((r = state_put(n->state, e->name, VER_KIND_FILE, v)) < 0)
                log_warn("session %s: cannot write the state journal: %s", e->tag, strerror(-r));
}

void node_record_file(struct node *n, struct node_ent *e, const struct proto_ver *v, size_t size, bool from_peer) {
        /* Also replaces a tombstone's record when a newer file beat it. */
        journal_file(n, e, v);
        node_set_kind(n, e, VER_KIND_FILE);
        e->ver = *v;
        e->size = (uint32_t)size;
        e->from_peer = from_peer;
        if (!from_peer)
                e->peer_made = false;   /* PHP's now: its logout is no name never seen */
        e->tomb_ns = 0;
        node_ready_seen(n, e, NODE_NO_PEER);
        if (e->tturn == n->turn && sess_hash(e->tdata, e->tlen) != v->hash)
                node_turn_drop(n, e);   /* the turn's cached bytes are not this version */
}

int node_record_tomb(struct node *n, struct node_ent *e, uint8_t kind, const struct proto_ver *v, bool from_peer) {
        int r;

        if (n->state && (r = state_put(n->state, e->name, kind, v)) < 0) {
                log_error("session %s: cannot persist tombstone: %s", e->tag, strerror(-r));
                return r;
        }
        kind &= (uint8_t)~STATE_UNSEEN;   /* the journal's mark only */
        node_set_kind(n, e, kind);
        e->ver = *v;
        e->size = 0;
        e->from_peer = from_peer;
        e->tomb_ns = loop_realtime_ns();
        node_basis_free(n, e);
        node_ready_seen(n, e, NODE_NO_PEER);
        return 0;
}

bool node_forgettable(const struct node *n, const struct proto_ver *v) {
        return ver_forgettable(v, loop_realtime_ns(), n->conf->tombstone_ttl_ms * 1000000ull);
}

/* Tombstones are appended to the journal as they are made and synced here,
 * once a turn, after the checks and before anything is sent: the one place
 * that orders durability before replies (docs/ARCHITECTURE.md "The turn"). */
int node_make_durable(struct node *n) {
        int r = n->state ? state_sync(n->state) : 0;

        n->durable = r == 0;
        if (r < 0)
                log_error("cannot sync tombstones to disk: %s; deletes are held back", strerror(-r));
        return r;
}

/* Is e still referenced from a check, a peer's queue or readiness? */
static bool held(const struct node *n, const struct node_ent *e) {
        if (e->checking || e->retrying || e->tturn || e->skip)   /* skip: counted in n_skipped */
                return true;
        for (size_t i = 0; i < n->n_peers; i++)
                if (e->peer[i].queued || e->peer[i].delayed || e->peer[i].wanted)
                        return true;
        return false;
}

void node_forget(struct node *n, struct node_ent *e) {
        if (e->kind != VER_KIND_NONE && n->state)
                (void)state_del(n->state, e->name);
        node_set_kind(n, e, VER_KIND_NONE);
        if (held(n, e))
                return;
        HASH_DEL(n->table, e);
        ent_free(n, e);
}

void node_expire_tombs(struct node *n) {
        uint64_t now = loop_realtime_ns(), ttl = n->conf->tombstone_ttl_ms * 1000000ull;
        struct node_ent *e, *tmp;

        HASH_ITER(hh, n->table, e, tmp) {
                if (e->kind == VER_KIND_FILE)
                        continue;
                if (e->kind != VER_KIND_NONE && (now < e->tomb_ns || now - e->tomb_ns < ttl))
                        continue;
                if (!held(n, e))
                        node_forget(n, e);
        }
}

void node_load_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct node *n = ctx;
        struct node_ent *e;

        bool unseen = ver_is_tomb(kind & ~STATE_UNSEEN) && (kind & STATE_UNSEEN);

        if (kind == STATE_KIND_MARK && strcmp(name, STATE_MARK_NAME) == 0) {
                /* Forgotten before this start: what they beat is still refused. */
                if (!n->unseen_marked || ver_cmp(v, &n->unseen_mark) > 0)
                        n->unseen_mark = *v;
                n->unseen_marked = true;
                return;
        }
        kind &= (uint8_t)~STATE_UNSEEN;
        /* The journal is ours, but a name is trusted nowhere without the
         * same check the directory scan and the wire get. */
        if (!sess_name_valid(name, n->conf->session_format, n->conf->session_prefix)) {
                log_warn("state journal: a record for a name that is not a session here (%s); ignored", NODE_TAG(name));
                return;
        }
        e = node_ensure(n, name);
        if (!e)
                return;
        if (kind == STATE_KIND_APPLYING) {
                node_set_kind(n, e, VER_KIND_NONE);
                e->suspect = true;
                return;
        }
        node_set_kind(n, e, kind);
        e->ver = *v;
        if (kind != VER_KIND_FILE)
                e->tomb_ns = made_ns;
        if (unseen && !e->unseen_at)
                (void)node_unseen_heap_add(n, e);   /* back in the bounded set; the next add trims it */
}

void node_forget_files(struct node *n) {
        for (struct node_ent *e = n->table; e; e = e->hh.next) {
                if (e->kind == VER_KIND_FILE)
                        node_set_kind(n, e, VER_KIND_NONE);
        }
}

struct table_cursor {
        struct node *n;
        struct node_ent *e;
        bool mark_done;
};

/* Every record the table holds, then the watermark of forgotten
 * tombstones for names never seen (lib/state.h). */
static int table_next(void *ctx, const char **name, uint8_t *kind, struct proto_ver *v, uint64_t *made) {
        struct table_cursor *cur = ctx;

        while (cur->e && cur->e->kind == VER_KIND_NONE)
                cur->e = cur->e->hh.next;
        if (!cur->e) {
                if (cur->mark_done || !cur->n->unseen_marked)
                        return 0;
                cur->mark_done = true;
                *name = STATE_MARK_NAME;
                *kind = STATE_KIND_MARK;
                *v = cur->n->unseen_mark;
                *made = 0;
                return 1;
        }
        *name = cur->e->name;
        *kind = cur->e->kind | (cur->e->unseen_at ? STATE_UNSEEN : 0);
        *v = cur->e->ver;
        *made = cur->e->kind == VER_KIND_FILE ? 0 : cur->e->tomb_ns;
        cur->e = cur->e->hh.next;
        return 1;
}

int node_compact_state(struct node *n) {
        struct table_cursor cur = { .n = n, .e = n->table };

        if (!n->state || !state_want_compact(n->state, n->n_files + n->n_tombs))
                return 0;
        return state_compact(n->state, table_next, &cur);
}

void node_journal_applying(struct node *n, struct node_ent *e, const struct proto_ver *v) {
        int r;

        if (n->state && (r = state_put(n->state, e->name, STATE_KIND_APPLYING, v)) < 0)
                log_warn("session %s: cannot write the state journal: %s", e->tag, strerror(-r));
}

void node_journal_restore(struct node *n, struct node_ent *e) {
        int r;

        if (!n->state)
                return;
        r = e->kind == VER_KIND_NONE ? state_del(n->state, e->name) : state_put(n->state, e->name, e->kind, &e->ver);
        if (r < 0)
                log_warn("session %s: cannot write the state journal: %s", e->tag, strerror(-r));
}

void node_reset_suspects(struct node *n) {
        for (struct node_ent *e = n->table; e; e = e->hh.next) {
                struct sess_file f = SESS_FILE_INIT;
                int r;

                if (!e->suspect)
                        continue;
                e->suspect = false;
                r = node_open(n, e, SESS_EXCL, n->conf->max_file_size, &f);
                if (r == -ENOENT || r == -EPERM || r == -EMLINK)
                        continue;   /* gone, or not PHP's own (logged): never written */
                if (r == 0)
                        r = sess_set_mtime(&f, 1);
                sess_release(n->dirfd, e->name, &f);
                if (r < 0)
                        log_warn("session %s: was being written when sessyncd stopped, and cannot be reset: %s",
                                 e->tag, strerror(-r));
                else
                        log_warn("session %s: was being written when sessyncd stopped; its peers' copy will replace it",
                                 e->tag);
        }
}
