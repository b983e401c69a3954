#include "daemon/node.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/loop.h"
#include "lib/delta.h"
#include "lib/sess.h"
#include "lib/state.h"

/* Below this a whole file is never larger than a delta: keep no signature. */
#define NODE_DELTA_MIN 512
#define NODE_RETRY_MS 1000
#define NODE_BUSY_MS 5 /* PHP holds the lock for one request: poll soon, cheaply */

static int vec_push(struct ent_vec *v, struct ent *e) {
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 64;
                struct ent **p;

                if (v->head > 0) {   /* reuse the consumed front before growing */
                        memmove(v->v, v->v + v->head, (v->n - v->head) * sizeof(*v->v));
                        v->n -= v->head;
                        v->head = 0;
                        if (v->n < v->cap)
                                goto room;
                }
                p = realloc(v->v, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                v->v = p;
                v->cap = cap;
        }
room:
        v->v[v->n++] = e;
        return 0;
}

static struct ent *vec_pop(struct ent_vec *v) {
        struct ent *e;

        if (v->head == v->n) {
                v->head = v->n = 0;
                return NULL;
        }
        e = v->v[v->head++];
        if (v->head == v->n)
                v->head = v->n = 0;
        return e;
}

static int64_t on_busy_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        struct ent *e;

        (void)l;
        while ((e = vec_pop(&n->busy))) {
                e->checking = false;
                node_check(n, e->name);
        }
        return LOOP_TIMER_STOP;
}

static int64_t on_delay_timer(struct loop *l, void *ctx) {
        struct node *n = ctx;
        uint64_t now = loop_clock_ms(), next = 0;

        (void)l;
        for (size_t i = 0; i < n->n_peers; i++) {
                size_t k = 0;

                for (size_t j = 0; j < n->n_delay[i]; j++) {
                        struct node_delay d = n->delay[i][j];

                        if (d.due_ms <= now) {
                                d.e->peer[i].delayed = false;
                                node_mark_dirty(n, d.e, i);
                                continue;
                        }
                        if (!next || d.due_ms - now < next)
                                next = d.due_ms - now;
                        n->delay[i][k++] = d;
                }
                n->n_delay[i] = k;
        }
        return next ? (int64_t)next : LOOP_TIMER_STOP;
}

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
        n->busy_timer = loop_timer_new(l, on_busy_timer, n);
        n->delay_timer = loop_timer_new(l, on_delay_timer, n);
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

void node_mark_dirty(struct node *n, struct ent *e, size_t idx) {
        struct ent_peer *ep = &e->peer[idx];

        if (ep->dirty || ep->delayed)
                return;
        if (!ep->queued) {
                if (vec_push(&n->dirty[idx], e) < 0) {
                        /* Out of memory: catch-up on the next connect finds it. */
                        log_error("\"%s\": out of memory queueing for a peer; left to catch-up", e->name);
                        return;
                }
                ep->queued = true;
        }
        ep->dirty = true;
        n->n_dirty[idx]++;
}

void node_clear_dirty(struct node *n, struct ent *e, size_t idx) {
        /* Stays in the vector (queued) until node_next_dirty skips it. */
        if (e->peer[idx].dirty) {
                e->peer[idx].dirty = false;
                n->n_dirty[idx]--;
        }
}

void node_mark_all(struct node *n, struct ent *e) {
        for (size_t i = 0; i < n->n_peers; i++)
                node_mark_dirty(n, e, i);
}

void node_delay(struct node *n, struct ent *e, size_t idx, uint64_t ms) {
        struct node_delay *d;

        if (e->peer[idx].delayed)
                return;
        if (e->peer[idx].dirty)
                return;   /* already going out again */
        if (n->n_delay[idx] == n->cap_delay[idx]) {
                size_t cap = n->cap_delay[idx] ? n->cap_delay[idx] * 2 : 16;

                d = realloc(n->delay[idx], cap * sizeof(*d));
                if (!d) {
                        node_mark_dirty(n, e, idx);
                        return;
                }
                n->delay[idx] = d;
                n->cap_delay[idx] = cap;
        }
        n->delay[idx][n->n_delay[idx]++] = (struct node_delay){ e, loop_clock_ms() + ms };
        e->peer[idx].delayed = true;
        loop_timer_arm_sooner(n->loop, n->delay_timer, ms);
}

struct ent *node_next_dirty(struct node *n, size_t idx) {
        struct ent *e;

        while ((e = vec_pop(&n->dirty[idx]))) {
                e->peer[idx].queued = false;
                if (e->peer[idx].dirty)
                        break;
        }
        if (e) {
                e->peer[idx].dirty = false;
                n->n_dirty[idx]--;
        }
        return e;
}

size_t node_pending(const struct node *n, size_t idx) {
        return n->n_dirty[idx] + n->n_delay[idx];
}

void node_check(struct node *n, const char *name) {
        struct ent *e;

        if (!sess_name_valid(name, n->conf->session_prefix))
                return;
        e = node_ensure(n, name);
        if (!e) {
                log_error("\"%s\": out of memory; the next rescan will find it", name);
                n->rescan = true;
                return;
        }
        if (e->checking)
                return;
        if (vec_push(&n->checks, e) < 0) {
                n->rescan = true;
                return;
        }
        e->checking = true;
}

int node_scan(struct node *n) {
        struct dirent *de;
        DIR *d;
        int fd;

        /* Files that vanished while nobody watched: every known live file is
         * checked too, so a missing one becomes a tombstone. */
        for (struct ent *e = n->table; e; e = e->hh.next)
                if (e->kind == PROTO_KIND_FILE)
                        node_check(n, e->name);
        fd = openat(n->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        while ((de = readdir(d)))
                if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
                        node_check(n, de->d_name);
        closedir(d);
        return 0;
}

/* Bytes of files one turn may keep for its peers. A rescan looks at every
 * file in one turn; without a cap the daemon would briefly hold the whole
 * session tmpfs in memory. Past it, senders read the file again. */
#define NODE_TURN_BYTES (16u << 20)

static void turn_keep(struct node *n, struct ent *e, uint8_t *data, size_t len) {
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
                if (vec_push(&n->turn_reads, e) < 0) {
                        free(e->tdata);   /* no cache, read again: correct, slower */
                        e->tdata = NULL;
                        e->tturn = 0;
                }
        }
}

static void local_delete(struct node *n, struct ent *e) {
        uint64_t now = loop_realtime_ns();
        uint64_t life = n->conf->session_lifetime_ms * 1000000ull;
        struct proto_ver v;
        uint8_t kind;

        /* DESIGN "Versions": a file older than the lifetime was expired by
         * PHP's GC and the tombstone carries its version, so it cannot log
         * out a user who stayed active elsewhere; a younger one was a logout
         * and carries the time of the delete. */
        if (now > e->ver.mtime_ns && now - e->ver.mtime_ns >= life) {
                kind = PROTO_KIND_EXPIRE;
                v = e->ver;
        } else {
                kind = PROTO_KIND_DESTROY;
                v = (struct proto_ver){ .mtime_ns = now, .hash = 0 };
        }
        log_debug("\"%s\": deleted here (%s)", e->name, kind == PROTO_KIND_EXPIRE ? "expired" : "destroyed");
        if (node_record_tomb(n, e, kind, &v, false) < 0)
                return;
        node_mark_all(n, e);
}

void node_saw(struct node *n, struct ent *e, const struct sess_file *f) {
        if (!f) {
                if (e->kind == PROTO_KIND_FILE)
                        local_delete(n, e);
                return;
        }
        if (e->kind != PROTO_KIND_FILE || proto_ver_cmp(&f->ver, &e->ver) != 0) {
                log_debug("\"%s\": changed here (%zu bytes)", e->name, f->len);
                node_record_file(n, e, &f->ver, f->len, false);
                node_mark_all(n, e);
        }
}

/* Read e under LOCK_SH and reconcile the entry with the disk. */
static int look(struct node *n, struct ent *e) {
        struct sess_file f = SESS_FILE_INIT;
        int r;

        r = sess_open(n->dirfd, e->name, SESS_SHARED, n->conf->max_file_size, &f);
        if (r == -ENOENT || r == -ELOOP || r == -EISDIR || r == -EINVAL) {
                node_saw(n, e, NULL);
                return -ENOENT;
        }
        if (r == -EFBIG) {
                if (e->size != (uint32_t)f.len)
                        log_warn("\"%s\": %zu bytes, over max_file_size; not replicated", e->name, f.len);
                e->size = (uint32_t)f.len;
                return r;
        }
        if (r < 0)
                return r;
        node_saw(n, e, &f);
        turn_keep(n, e, f.data, f.len);
        f.data = NULL;
        sess_release(n->dirfd, e->name, &f);
        return 0;
}

void node_run_checks(struct node *n) {
        struct ent *e;

        if (n->rescan) {
                n->rescan = false;
                log_info("rescanning the session directory");
                if (node_scan(n) < 0)
                        log_error("rescan failed: %s", strerror(errno));
        }
        while ((e = vec_pop(&n->checks))) {
                int r;

                e->checking = false;
                if (e->tturn == n->turn)
                        continue;   /* read this turn already */
                r = look(n, e);
                if (r == -EWOULDBLOCK) {
                        if (vec_push(&n->busy, e) == 0) {
                                e->checking = true;
                                loop_timer_arm_sooner(n->loop, n->busy_timer, NODE_BUSY_MS);
                        }
                } else if (r < 0 && r != -ENOENT && r != -EFBIG) {
                        /* Transient (EMFILE, EIO, ENOMEM): look again later,
                         * never forget a change. */
                        log_warn("\"%s\": cannot read: %s; retrying", e->name, strerror(-r));
                        if (vec_push(&n->busy, e) == 0) {
                                e->checking = true;
                                loop_timer_arm_sooner(n->loop, n->busy_timer, NODE_RETRY_MS);
                        }
                }
        }
}

int node_read(struct node *n, struct ent *e, const uint8_t **ret_data, size_t *ret_len) {
        int r;

        if (e->tturn != n->turn) {
                if ((r = look(n, e)) < 0)
                        return r;
        }
        if (e->kind != PROTO_KIND_FILE)
                return -ENOENT;
        if (e->tturn != n->turn)
                return -ENOBUFS;   /* over this turn's cap: send it next turn */
        *ret_data = e->tdata;
        *ret_len = e->tlen;
        return 0;
}

void node_end_turn(struct node *n) {
        struct ent *e;

        while ((e = vec_pop(&n->turn_reads))) {
                if (e->kind == PROTO_KIND_FILE && e->tlen >= NODE_DELTA_MIN && e->sig_hash != e->ver.hash &&
                    sess_hash(e->tdata, e->tlen) == e->ver.hash) {
                        struct delta_sig *sig = NULL;

                        /* Move the basis forward only once some peer holds the
                         * new version; others fall back to whole files. */
                        for (size_t i = 0; i < n->n_peers; i++) {
                                if (e->peer[i].has.hash == e->ver.hash && e->peer[i].has_kind == PROTO_KIND_FILE) {
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

/* Change e's kind, keeping the file and tombstone counts right. */
static void set_kind(struct node *n, struct ent *e, uint8_t kind) {
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
        set_kind(n, e, PROTO_KIND_FILE);
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
        set_kind(n, e, kind);
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
                set_kind(n, e, ENT_NONE);
                HASH_DEL(n->table, e);
                ent_free(e);
        }
}

void node_load_record(void *ctx, const char *name, uint8_t kind, const struct proto_ver *v, uint64_t made_ns) {
        struct node *n = ctx;
        struct ent *e = node_ensure(n, name);

        if (!e)
                return;
        set_kind(n, e, kind);
        e->ver = *v;
        if (kind != PROTO_KIND_FILE)
                e->tomb_ns = made_ns;
}

void node_forget_files(struct node *n) {
        for (struct ent *e = n->table; e; e = e->hh.next) {
                if (e->kind == PROTO_KIND_FILE)
                        set_kind(n, e, ENT_NONE);
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
